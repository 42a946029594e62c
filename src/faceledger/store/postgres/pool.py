"""The one way the PostgreSQL stores open their connection pools, ``Sql`` over a pool, and
``PooledStore``: the pool a store is given or opens (the preamble of every PostgreSQL store)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

#: Seconds to wait for a pooled connection (or for the server at start-up).
POOL_TIMEOUT_S = 30.0


def open_pool(url: str, *, size: int, name: str, min_size: int = 1) -> ConnectionPool:
    """A psycopg pool of ``min_size`` to ``size`` connections to ``url``, checked on checkout,
    open and connected (the server unreachable → the error now, not at the first request)."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
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


class PostgresSql:
    """``store/sql.py``'s ``Sql`` over a pool: each block one pooled connection and one
    transaction; JSON columns as ``jsonb`` (psycopg decodes them)."""

    unique_violation = pg_errors.UniqueViolation

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def transaction(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self.pool.connection()

    def reading(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self.pool.connection()

    @staticmethod
    def encode_json(value: Any) -> Jsonb:
        return Jsonb(value)

    @staticmethod
    def decode_json(value: Any) -> Any:
        return value


class PooledStore:
    """A PostgreSQL store's connections: ``pool`` when it is given one (a pool shared with the
    process's other stores, closed by whoever opened it, not by ``close``), else a pool of its
    own of ``size`` connections to ``url``. Mixed in before a store's tables class."""

    _pool: ConnectionPool
    _owns_pool: bool

    def _use_pool(
        self, url: str, pool: ConnectionPool | None, *, size: int, name: str
    ) -> PostgresSql:
        """Keep ``pool``, or open one of ``size`` connections named ``name``; ``Sql`` over it."""
        self._owns_pool = pool is None
        self._pool = pool or open_pool(url, size=size, name=name)
        return PostgresSql(self._pool)

    def close(self) -> None:
        """Close the pool's connections (idempotent; a shared pool is its owner's to close)."""
        if self._owns_pool:
            self._pool.close()
