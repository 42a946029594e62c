"""The one way the PostgreSQL stores open their connection pools."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

#: Seconds to wait for a pooled connection (or for the server at start-up).
POOL_TIMEOUT_S = 30.0


def open_pool(url: str, *, size: int, name: str) -> ConnectionPool:
    """A psycopg pool of at most ``size`` connections to ``url``, checked on checkout, open and
    connected (the server unreachable → the error now, not at the first request)."""
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        timeout=POOL_TIMEOUT_S,
        name=name,
        check=ConnectionPool.check_connection,
        open=True,
    )
    try:
        pool.wait(timeout=POOL_TIMEOUT_S)
    except Exception:
        pool.close()
        raise
    return pool
