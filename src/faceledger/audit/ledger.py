"""The audit ledger in one SQLite file (the embedded backend), and ``Ledger.from_settings``.

Every service verb that reads or changes biometric data appends one ``AuditEvent``; ``append``
returns only once the record is durably committed (WAL, ``synchronous=FULL``), and raises
``LedgerError`` when it cannot be, so that the operation fails rather than go unrecorded.
Group commit, checkpoints, reading and verification are shared with the PostgreSQL backend
(``faceledger.audit.core``); this module supplies storage. Each write transaction is
``BEGIN IMMEDIATE``: SQLite's write lock orders the transactions of several *processes*
appending to the same file (the server and a CLI ``faceledger index`` run), so they form one
chain.

Storage: ``records(seq, body, digest, mac)`` (format in ``chain``; ``mac`` the per-record MAC,
``keyring``), a one-row ``meta`` table (ledger id, creation time, and where the last checkpoint
is, to schedule the next one) and ``open_intents`` (intent records without an outcome yet). The
file is 0600 in a 0700 folder. Triggers refuse UPDATE and DELETE on ``records`` (a guard
against mistakes; tampering with the file itself is what ``verify`` detects).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from faceledger.audit.chain import KIND_AT, PREFIX_LEN
from faceledger.audit.core import (
    ChainLedger,
    EntryQuery,
    LedgerEntry,
    LedgerWrite,
    VerifySnapshot,
)
from faceledger.audit.intents import OpenIntent
from faceledger.audit.keyring import Keyring
from faceledger.audit.parallel import ParallelPlan, verify_sqlite_in_parallel
from faceledger.audit.signing import resolve_key_file
from faceledger.audit.verify import Anchors, Progress, Row, VerifyReport
from faceledger.domain.errors import LedgerError
from faceledger.store.files import create_private_file
from faceledger.store.rules import LedgerDialect, ledger_meta_values

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from faceledger.config import Settings

__all__ = ["LEDGER_FILENAME", "ChainLedger", "Ledger", "LedgerEntry"]

LEDGER_FILENAME = "ledger.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    digest BLOB NOT NULL,
    mac BLOB
);
CREATE TABLE IF NOT EXISTS open_intents (
    intent_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    owner TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_checkpoint_seq INTEGER NOT NULL DEFAULT 0,
    last_checkpoint_time REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
"""

# The JSON part of a body, for SQL filters (substr is 1-based; CAST because it is a BLOB).
_JSON_SQL = f"CAST(substr(body, {PREFIX_LEN + 1}) AS TEXT)"
_DIALECT = LedgerDialect(
    table="records",
    event_sql=f"substr(body, {KIND_AT + 1}, 1) = X'45'",  # the kind marker is b"E"
    field_sql=lambda name: f"json_extract({_JSON_SQL}, '$.{name}') = ?",
    time_sql=f"json_extract({_JSON_SQL}, '$.time')",
    mark="?",
    contains_sql="instr(body, ?) > 0",
)
_FETCH_ROWS = 1024


def _meta(db: sqlite3.Connection) -> tuple[int, float]:
    row = db.execute(
        "SELECT last_checkpoint_seq, last_checkpoint_time FROM meta WHERE id = 1"
    ).fetchone()
    if row is None:
        raise LedgerError("the audit ledger has lost its meta row")
    return int(row[0]), float(row[1])


def _digest_at(db: sqlite3.Connection, seq: int) -> bytes | None:
    row = db.execute("SELECT digest FROM records WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0]) if row is not None and isinstance(row[0], bytes) else None


class _SqliteWrite:
    """``LedgerWrite`` on a connection inside ``BEGIN IMMEDIATE``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def head(self) -> tuple[int, bytes]:
        row = self.db.execute(
            "SELECT seq, digest FROM records ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row is not None else (0, bytes(32))

    def checkpoint_state(self) -> tuple[int, float]:
        return _meta(self.db)

    def digest_at(self, seq: int) -> bytes | None:
        return _digest_at(self.db, seq)

    def rows_after(self, seq: int) -> Sequence[Row]:
        return self.db.execute(
            "SELECT seq, body, digest, mac FROM records WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()

    def insert(self, rows: Sequence[Row]) -> None:
        self.db.executemany(
            "INSERT INTO records (seq, body, digest, mac) VALUES (?, ?, ?, ?)", rows
        )

    def open_intent(self, intent: OpenIntent) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO open_intents (intent_id, seq, owner, time) VALUES (?, ?, ?, ?)",
            (intent.intent_id, intent.seq, intent.owner, intent.time),
        )

    def close_intent(self, intent_id: str) -> None:
        self.db.execute("DELETE FROM open_intents WHERE intent_id = ?", (intent_id,))

    def mark_checkpoint(self, seq: int, when: float) -> None:
        self.db.execute(
            "UPDATE meta SET last_checkpoint_seq = ?, last_checkpoint_time = ? WHERE id = 1",
            (seq, when),
        )


class Ledger(ChainLedger):
    """The audit ledger in one SQLite file; safe to share by threads and by processes.

    ``key_file`` signs checkpoints and must not be inside the ledger's folder. Nothing is
    written until the first ``append`` (which also loads or creates the key). Create it after
    any ``fork()``: its timer thread and connections do not survive one.
    """

    storage_errors = (sqlite3.Error, OSError)

    def __init__(
        self,
        path: Path,
        *,
        key_file: Path,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self._init_signing(
            resolve_key_file(key_file, self.path.parent), checkpoint_every, checkpoint_seconds
        )
        self._local = threading.local()
        try:
            create_private_file(self.path)
            db = self._reader()
            db.executescript(SCHEMA)
            columns = {r[1] for r in db.execute("PRAGMA table_info(records)")}
            if "mac" not in columns:  # a ledger from before per-record MACs
                with contextlib.suppress(sqlite3.OperationalError):  # another process did
                    db.execute("ALTER TABLE records ADD COLUMN mac BLOB")
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR IGNORE INTO meta (id, ledger_id, created_at, last_checkpoint_seq, "
                "last_checkpoint_time) VALUES (1, ?, ?, 0, ?)",
                ledger_meta_values(time.time()),
            )
            db.execute("COMMIT")
            row = db.execute("SELECT ledger_id, created_at FROM meta WHERE id = 1").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the audit ledger {self.path}: {exc}") from None
        self.location = str(self.path.resolve())
        self.ledger_id: str = row[0]
        self.created_at: float = float(row[1])

    @classmethod
    def from_settings(
        cls, settings: Settings, *, pool: ConnectionPool | None = None
    ) -> ChainLedger:
        """The installation's ledger: in PostgreSQL when ``settings.database_url`` is set
        (``faceledger.audit.postgres``; on ``pool`` when given, the stores' shared pool), else
        ``<data_dir>/ledger.sqlite3``. Either way it is signed with ``settings.ledger_key_file``
        (default ``$XDG_CONFIG_HOME/faceledger/ledger.key``), which must be outside
        ``data_dir``."""
        key_file = resolve_key_file(settings.ledger_key_file, settings.data_dir)
        if settings.database_url is not None:
            from faceledger.audit.postgres import PostgresLedger

            return PostgresLedger(
                settings.database_url,
                key_file=key_file,
                checkpoint_every=settings.ledger_checkpoint_every,
                checkpoint_seconds=settings.ledger_checkpoint_seconds,
                pool=pool,
            )
        return cls(
            settings.data_dir / LEDGER_FILENAME,
            key_file=key_file,
            checkpoint_every=settings.ledger_checkpoint_every,
            checkpoint_seconds=settings.ledger_checkpoint_seconds,
        )

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection for reads."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    # -- storage --------------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[LedgerWrite]:
        db: sqlite3.Connection | None = getattr(self._local, "writer", None)
        try:
            if db is None:
                db = self._local.writer = self._connect()
            db.execute("BEGIN IMMEDIATE")
            yield _SqliteWrite(db)
            db.execute("COMMIT")
        except BaseException:
            self._local.writer = self._recover(db)
            raise

    @staticmethod
    def _recover(db: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """After a failed transaction: roll back, or drop the connection if that fails."""
        if db is None:
            return None
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
            return db
        except sqlite3.Error:
            db.close()
            return None

    def _checkpoint_state(self) -> tuple[int, float]:
        return _meta(self._reader())

    def last_seq(self) -> int:
        row = self._reader().execute("SELECT max(seq) FROM records").fetchone()
        return int(row[0] or 0)

    def _select(self, query: EntryQuery) -> Iterator[tuple[int, bytes, bytes]]:
        sql, params = _DIALECT.select(query)
        cursor = self._reader().execute(sql, params)
        try:
            for rows in iter(partial(cursor.fetchmany, 1000), []):
                yield from rows
        finally:
            cursor.close()

    @contextmanager
    def _snapshot(self) -> Iterator[VerifySnapshot]:
        db = self._reader()
        db.execute("BEGIN")  # one snapshot for the whole pass
        try:
            total = int(db.execute("SELECT max(seq) FROM records").fetchone()[0] or 0)
            cursor = db.execute("SELECT seq, body, digest, mac FROM records ORDER BY seq")
            yield VerifySnapshot(
                total=total,
                chunks=iter(partial(cursor.fetchmany, _FETCH_ROWS), []),
                digest_at=partial(_digest_at, db),
            )
            cursor.close()
        finally:
            db.execute("COMMIT")

    def _verify_in_parallel(
        self, anchors: Anchors, keyring: Keyring, plan: ParallelPlan, progress: Progress | None
    ) -> VerifyReport | None:
        return verify_sqlite_in_parallel(self.path, anchors, keyring, plan, progress)

    def _open_intents(self) -> list[OpenIntent]:
        rows = self._reader().execute(
            "SELECT intent_id, seq, owner, time FROM open_intents ORDER BY seq"
        )
        return [OpenIntent(str(r[0]), int(r[1]), str(r[2]), float(r[3])) for r in rows]

    def _row_at(self, seq: int) -> tuple[int, bytes, bytes] | None:
        row = (
            self._reader()
            .execute("SELECT seq, body, digest FROM records WHERE seq = ?", (seq,))
            .fetchone()
        )
        return (int(row[0]), bytes(row[1]), bytes(row[2])) if row is not None else None

    def _close_storage(self) -> None:
        """Close this thread's connections (other threads' close when they are collected)."""
        for name in ("db", "writer"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                setattr(self._local, name, None)
