"""Per-thread connections to one SQLite file, and its write transactions.

Every store file is opened the same way: WAL (readers never block the writer), synchronous=FULL
(a commit is durable when it returns), foreign keys on, and secure_delete (deleted rows are
overwritten in the file, not left in free pages). SQLite connections are not shared between
threads: each thread opens its own, and one lock serialises this process's writers (other
processes wait on SQLite's own lock, up to the busy timeout).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 30_000  # how long a connection waits for another process's write lock


class Connections:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        # Held for every write transaction of this process; also by maintenance that must not
        # interleave with writes (WAL checkpoints).
        self.write_lock = threading.Lock()

    def db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA secure_delete=ON")
            self._local.db = db
        return db

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; committed (durably) when the block exits without error."""
        db = self.db()
        with self.write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (other threads close their own on exit)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class SchemaStore:
    """A SQLite store's connections: ``Connections`` to its file, its tables made from
    ``schema`` (idempotent). Mixed in before a store's tables class."""

    _connections: Connections

    def _open_tables(self, path: Path, schema: str) -> SqliteSql:
        """Open ``path``, run ``schema`` (executescript manages its own commit); ``Sql`` over it."""
        self._connections = Connections(Path(path))
        with self._connections.write_lock:
            self._connections.db().executescript(schema)
        return SqliteSql(self._connections)

    def close(self) -> None:
        """Close this thread's connection (other threads close their own on exit)."""
        self._connections.close()


class _Percent:
    """A SQLite connection that takes ``%s`` placeholders (``store/sql.py``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql.replace("%s", "?"), params)


class SqliteSql:
    """``store/sql.py``'s ``Sql`` over ``Connections``: JSON columns as text."""

    unique_violation = sqlite3.IntegrityError

    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    @contextmanager
    def transaction(self) -> Iterator[_Percent]:
        with self._connections.tx() as db:
            yield _Percent(db)

    @contextmanager
    def reading(self) -> Iterator[_Percent]:
        yield _Percent(self._connections.db())

    @staticmethod
    def encode_json(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    @staticmethod
    def decode_json(value: Any) -> Any:
        return json.loads(value)
