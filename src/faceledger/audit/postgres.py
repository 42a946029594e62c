"""The audit ledger in PostgreSQL (the server backend): one chain for every API process.

Same records, digests, MACs, checkpoints and guarantees as the SQLite ledger (the shared logic
is ``faceledger.audit.core``); the rows live in ``ledger.records(seq, body, digest, mac)`` with
a one-row ``ledger.meta`` and ``ledger.open_intents``, created by the Alembic revisions
``0002_ledger`` and ``0005_ledger_macs_intents`` (``faceledger db upgrade``).

**One chain across processes and machines.** Each group-commit batch is one transaction that
first locks the one ``ledger.meta`` row (``SELECT … FOR UPDATE``), then reads the head and
inserts the batch: the row lock orders every writer's transactions, whichever process or host
it runs in, and a writer that dies mid-transaction (``kill -9``) has its transaction rolled back
and its lock released by the server. ``synchronous_commit`` is forced ``on`` for the writer's
session, so ``append`` returns only once the batch is in PostgreSQL's WAL on disk.

**Append-only.** Triggers refuse UPDATE, DELETE and TRUNCATE on ``ledger.records`` (a guard
against mistakes; give the API's role only INSERT and SELECT there). Tampering by a superuser
is what ``verify`` detects, exactly as for the file.

Connections: the writer (the current group-commit leader) and short reads take a connection
from the process's pool (``services/container.py`` shares the stores' pool; a ledger made
alone opens a small one of its own); each ``entries`` / ``verify`` pass opens a connection of
its own (they stream with a server-side cursor, however long the reader takes; ``verify``
reads one REPEATABLE READ snapshot).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from faceledger.audit.chain import KIND_AT, KIND_CODES, KIND_EVENT, PREFIX_LEN
from faceledger.audit.core import ChainLedger, EntryQuery, LedgerWrite, VerifySnapshot
from faceledger.audit.intents import OpenIntent
from faceledger.audit.verify import Row
from faceledger.domain.errors import LedgerError
from faceledger.store.postgres.pool import open_pool
from faceledger.store.rules import LedgerDialect, ledger_meta_values

RECORDS = "ledger.records"
META = "ledger.meta"
INTENTS = "ledger.open_intents"
LOCK_TIMEOUT_MS = 30_000  # how long a writer waits for another's transaction (as SQLite's)
POOL_SIZE = 4  # connections of a ledger that has no shared pool
_FETCH_ROWS = 8192

# The JSON part of a body, for SQL filters (substring is 1-based, get_byte 0-based).
_JSON_SQL = f"convert_from(substring(body FROM {PREFIX_LEN + 1}), 'UTF8')::jsonb"
_DIALECT = LedgerDialect(
    table=RECORDS,
    event_sql=f"get_byte(body, {KIND_AT}) = {KIND_CODES[KIND_EVENT][0]}",
    field_sql=lambda name: f"({_JSON_SQL} ->> '{name}') = %s",  # names: core.FIELD_FILTERS
    time_sql=f"({_JSON_SQL} ->> 'time')::float8",
    mark="%s",
    contains_sql="position(%s::bytea in body) > 0",
)


def database_location(url: str) -> str:
    """``postgresql://user@host:port/dbname`` of ``url``, without password or options: what
    the witness records as where the ledger lives."""
    info = conninfo_to_dict(url)
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"postgresql://{user}{host}:{port}/{info.get('dbname') or ''}"


class _PgWrite:
    """``LedgerWrite`` inside a transaction that holds the lock on the meta row."""

    def __init__(self, conn: psycopg.Connection[Any], checkpoint: tuple[int, float]) -> None:
        self.conn = conn
        self._checkpoint = checkpoint

    def head(self) -> tuple[int, bytes]:
        row = self.conn.execute(
            f"SELECT seq, digest FROM {RECORDS} ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row is not None else (0, bytes(32))

    def checkpoint_state(self) -> tuple[int, float]:
        return self._checkpoint

    def digest_at(self, seq: int) -> bytes | None:
        return _digest_at(self.conn, seq)

    def rows_after(self, seq: int) -> Sequence[Row]:
        rows = self.conn.execute(
            f"SELECT seq, body, digest, mac FROM {RECORDS} WHERE seq > %s ORDER BY seq", (seq,)
        ).fetchall()
        return [_row(r) for r in rows]

    def insert(self, rows: Sequence[Row]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {RECORDS} (seq, body, digest, mac) VALUES (%s, %s, %s, %s)", rows
            )

    def open_intent(self, intent: OpenIntent) -> None:
        self.conn.execute(
            f"INSERT INTO {INTENTS} (intent_id, seq, owner, time) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (intent_id) DO UPDATE SET seq = EXCLUDED.seq",
            (intent.intent_id, intent.seq, intent.owner, intent.time),
        )

    def close_intent(self, intent_id: str) -> None:
        self.conn.execute(f"DELETE FROM {INTENTS} WHERE intent_id = %s", (intent_id,))

    def mark_checkpoint(self, seq: int, when: float) -> None:
        self.conn.execute(
            f"UPDATE {META} SET last_checkpoint_seq = %s, last_checkpoint_time = %s WHERE id = 1",
            (seq, when),
        )


def _row(r: Sequence[Any]) -> Row:
    """A row as ``verify`` expects it (psycopg returns ``bytea`` as bytes already)."""
    return (int(r[0]), bytes(r[1]), bytes(r[2]), None if r[3] is None else bytes(r[3]))


def _digest_at(conn: psycopg.Connection[Any], seq: int) -> bytes | None:
    row = conn.execute(f"SELECT digest FROM {RECORDS} WHERE seq = %s", (seq,)).fetchone()
    return bytes(row[0]) if row is not None and row[0] is not None else None


def _meta(conn: psycopg.Connection[Any], *, lock: bool = False) -> tuple[int, float]:
    sql = f"SELECT last_checkpoint_seq, last_checkpoint_time FROM {META} WHERE id = 1"
    row = conn.execute(sql + (" FOR UPDATE" if lock else "")).fetchone()
    if row is None:
        raise LedgerError("the audit ledger has lost its meta row (ledger.meta)")
    return int(row[0]), float(row[1])


class PostgresLedger(ChainLedger):
    """The audit ledger in the PostgreSQL database at ``url``; safe to share by threads, by
    processes and by hosts (every replica of the API appends to the same chain).

    ``key_file`` signs checkpoints; every process appending must use the same key (and each
    keeps a witness next to it). The tables must exist (``faceledger db upgrade``).
    """

    storage_errors = (psycopg.Error, OSError)

    def __init__(
        self,
        url: str,
        *,
        key_file: Path,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        pool: ConnectionPool | None = None,
    ) -> None:
        """``pool``: the process's shared pool (its owner closes it); without one the ledger
        opens its own of ``POOL_SIZE`` connections."""
        self._init_signing(Path(key_file), checkpoint_every, checkpoint_seconds)
        self.url = url
        try:
            self.location = database_location(url)
        except psycopg.Error as exc:
            raise LedgerError(f"the ledger's database URL is not valid: {exc}") from None
        self._lock = threading.Lock()  # guards reopening an own pool after ``close``
        self._owns_pool = pool is None
        self._pool: ConnectionPool | None = pool
        try:
            with self._connection() as conn:
                conn.execute(
                    f"INSERT INTO {META} (id, ledger_id, created_at, last_checkpoint_seq, "
                    "last_checkpoint_time) VALUES (1, %s, %s, 0, %s) ON CONFLICT (id) DO NOTHING",
                    ledger_meta_values(time.time()),
                )
                row = conn.execute(
                    f"SELECT ledger_id, created_at FROM {META} WHERE id = 1"
                ).fetchone()
        except psycopg.errors.UndefinedTable:
            self._close_storage()
            raise LedgerError(
                f"the database {self.location} has no audit ledger tables: run "
                "`faceledger db upgrade`"
            ) from None
        except psycopg.Error as exc:
            self._close_storage()
            raise LedgerError(f"cannot open the audit ledger in {self.location}: {exc}") from None
        assert row is not None
        self.ledger_id: str = str(row[0])
        self.created_at: float = float(row[1])

    # -- connections ----------------------------------------------------------------------
    def _connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=30)

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection, in a transaction committed when the block exits without error
        (rolled back otherwise)."""
        with self._lock:
            pool = self._pool
            if pool is None or (self._owns_pool and pool.closed):
                pool = self._pool = open_pool(self.url, size=POOL_SIZE, name="faceledger-ledger")
        return pool.connection()

    # -- storage --------------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[LedgerWrite]:
        with self._connection() as conn:
            conn.execute("SET LOCAL synchronous_commit TO on")  # durable once committed
            conn.execute(f"SET LOCAL lock_timeout TO {LOCK_TIMEOUT_MS}")
            checkpoint = _meta(conn, lock=True)  # the ledger's lock, held until commit
            yield _PgWrite(conn, checkpoint)

    def _checkpoint_state(self) -> tuple[int, float]:
        with self._connection() as conn:
            return _meta(conn)

    def last_seq(self) -> int:
        with self._connection() as conn:
            row = conn.execute(f"SELECT max(seq) FROM {RECORDS}").fetchone()
        return int(row[0] or 0) if row is not None else 0

    def _select(self, query: EntryQuery) -> Iterator[tuple[int, bytes, bytes]]:
        return self._stream(*_DIALECT.select(query))

    def _stream(self, sql: str, params: list[Any]) -> Iterator[tuple[int, bytes, bytes]]:
        conn = self._connect(autocommit=False)
        try:
            with conn.cursor(name="ledger_entries") as cursor:
                cursor.itersize = 1000
                cursor.execute(sql, params)
                yield from cursor
        finally:
            conn.close()

    @contextmanager
    def _snapshot(self) -> Iterator[VerifySnapshot]:
        conn = self._connect(autocommit=False)
        try:
            conn.isolation_level = IsolationLevel.REPEATABLE_READ  # one snapshot for the pass
            conn.read_only = True
            row = conn.execute(f"SELECT max(seq) FROM {RECORDS}").fetchone()
            total = int(row[0] or 0) if row is not None else 0
            with conn.cursor(name="ledger_verify") as cursor:
                cursor.execute(f"SELECT seq, body, digest, mac FROM {RECORDS} ORDER BY seq")
                yield VerifySnapshot(
                    total=total,
                    chunks=iter(partial(cursor.fetchmany, _FETCH_ROWS), []),
                    digest_at=partial(_digest_at, conn),
                )
        finally:
            conn.close()

    def _open_intents(self) -> list[OpenIntent]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT intent_id, seq, owner, time FROM {INTENTS} ORDER BY seq"
            ).fetchall()
        return [OpenIntent(str(r[0]), int(r[1]), str(r[2]), float(r[3])) for r in rows]

    def _row_at(self, seq: int) -> tuple[int, bytes, bytes] | None:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT seq, body, digest FROM {RECORDS} WHERE seq = %s", (seq,)
            ).fetchone()
        return (int(row[0]), bytes(row[1]), bytes(row[2])) if row is not None else None

    def _close_storage(self) -> None:
        """Close the ledger's own pool (a shared one is its owner's to close)."""
        with self._lock:
            if self._owns_pool and self._pool is not None:
                self._pool.close()
