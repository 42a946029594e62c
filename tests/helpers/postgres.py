"""Fresh databases on the session's PostgreSQL server (``postgres_server`` in the conftest)."""

from __future__ import annotations

import os
import uuid


def new_database(server_url: str, prefix: str = "faceledger_test", template: str = "") -> str:
    """Create a database with a name no other test (or pytest process) uses; its URL.

    Empty, or a clone of ``template`` (``CREATE DATABASE … TEMPLATE``, ≈ 40 ms) when given.
    """
    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clone}')
    return database_url(server_url, name)


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server_url`` (its ``postgres`` URL)."""
    return server_url.replace("/postgres?", f"/{name}?", 1)


def database_files(url: str) -> bytes:
    """Every file of the database at ``url`` (heap, TOAST, indexes) after a CHECKPOINT: what a
    byte search of the disk would read."""
    from pathlib import Path

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        (data_dir,) = conn.execute("SHOW data_directory").fetchone()  # type: ignore[misc]
        (oid,) = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()  # type: ignore[misc]
    folder = Path(data_dir) / "base" / str(oid)
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
