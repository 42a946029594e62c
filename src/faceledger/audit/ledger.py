"""The audit ledger: an append-only, hash-chained, periodically signed SQLite file.

Every service verb that reads or changes biometric data appends one ``AuditEvent``; ``append``
returns only once the record is durably committed (WAL, ``synchronous=FULL``), and raises
``LedgerError`` when it cannot be, so that the operation fails rather than go unrecorded.

**Group commit.** Appends from many threads are committed in batches, one ``BEGIN IMMEDIATE``
transaction (one fsync) each, by a *leader*: the calling thread that finds no commit running
commits everything queued so far, while callers arriving meanwhile queue for the next batch
(see ``_submit``). Inside the transaction the leader reads the chain head from the file, so
several *processes* appending to the same file (the server and a CLI ``faceledger index``
run) still form one chain: SQLite's write lock orders their transactions.

**Checkpoints.** Every ``checkpoint_every`` records or ``checkpoint_seconds`` (a timer thread
signs an idle tail; and at ``close()``), a checkpoint record signed with the ledger key is
appended in the same transaction, and the witness file next to the key is moved forward (see
``signing``).

Storage: ``records(seq, body, digest)`` (format in ``chain``) and a one-row ``meta`` table
(ledger id, creation time, and where the last checkpoint is, to schedule the next one). The
file is 0600 in a 0700 folder. Triggers refuse UPDATE and DELETE on ``records`` (a guard
against mistakes; tampering with the file itself is what ``verify`` detects).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceledger.audit.chain import (
    KIND_AT,
    KIND_CHECKPOINT,
    KIND_EVENT,
    PREFIX_LEN,
    body_payload,
    canonical_json,
    link,
)
from faceledger.audit.guard import MAX_RECORD_BYTES, check_event
from faceledger.audit.signing import (
    Witness,
    checkpoint_payload,
    load_key,
    load_or_create_key,
    read_witness,
    resolve_key_file,
    witness_path,
    witnesses_in,
    write_witness,
)
from faceledger.audit.verify import Progress, VerifyReport, verify_chain
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError, LedgerTamperedError

if TYPE_CHECKING:
    from faceledger.config import Settings

logger = logging.getLogger(__name__)

LEDGER_FILENAME = "ledger.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    digest BLOB NOT NULL
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
_EVENT_SQL = f"substr(body, {KIND_AT + 1}, 1) = X'45'"  # the kind marker is b"E"
_FETCH_ROWS = 8192


@dataclass(frozen=True)
class LedgerEntry:
    """One committed record: ``seq``, ``time`` (epoch seconds), ``digest`` (SHA-256 hex of the
    body) and its decoded content (``payload``: ``kind``, ``time`` and the event's fields, or
    a checkpoint's ``covers_seq``, ``covers_digest``, ``ledger_id``, ``hmac``)."""

    seq: int
    time: float
    digest: str
    payload: Mapping[str, Any] = field(repr=False)

    @property
    def kind(self) -> str:
        return str(self.payload.get("kind", KIND_EVENT))

    @property
    def event(self) -> AuditEvent | None:
        """The event this record holds (None for a checkpoint)."""
        if self.kind != KIND_EVENT:
            return None
        p = self.payload
        return AuditEvent(
            operation=p["operation"],
            principal=p["principal"],
            key_id=p["key_id"],
            roles=tuple(p["roles"]),
            source=p["source"],
            request_id=p["request_id"],
            outcome=p["outcome"],
            purpose=p.get("purpose"),
            case_reference=p.get("case_reference"),
            collection_id=p.get("collection_id"),
            probe_sha256=tuple(p.get("probe_sha256", ())),
            result=dict(p.get("result", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """``seq``, ``digest`` and the payload's fields, flat (for JSON output)."""
        return {"seq": self.seq, "digest": self.digest, **self.payload}


class _Batch:
    """Appends waiting for a leader; committed together, then ``done`` is set."""

    __slots__ = ("done", "entries", "error", "final", "force_checkpoint", "items")

    def __init__(self) -> None:
        self.items: list[tuple[float, bytes, dict[str, Any]]] = []  # (time, json, payload)
        self.force_checkpoint = False
        self.final = False  # close(): sign what this process left unsigned
        self.done = threading.Event()
        self.entries: list[LedgerEntry] = []
        self.error: LedgerError | None = None


@dataclass(frozen=True)
class _Signed:
    """A checkpoint just committed, to be recorded in the witness file."""

    witness: Witness


def _create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (folder 0700) unless it exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Ledger:
    """The audit ledger in one SQLite file; safe to share by threads and by processes.

    ``key_file`` signs checkpoints and must not be inside the ledger's folder. Nothing is
    written until the first ``append`` (which also loads or creates the key). Create it after
    any ``fork()``: its timer thread and connections do not survive one.
    """

    def __init__(
        self,
        path: Path,
        *,
        key_file: Path,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
    ) -> None:
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise ValueError("checkpoint_every must be ≥ 1 and checkpoint_seconds > 0")
        self.path = Path(path)
        self.key_file = resolve_key_file(key_file, self.path.parent)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self._local = threading.local()
        self._cond = threading.Condition()
        self._pending = _Batch()
        self._committing = False  # a leader is committing a batch
        self._closing = False
        self._key: bytes | None = None  # loaded by the first append
        self._timer: threading.Thread | None = None
        self._wake_timer = threading.Event()
        # When the last checkpoint was signed, and whether records of ours await one.
        self._last_cp_time = 0.0
        self._dirty = False
        self._last_written: tuple[int, bytes] | None = None  # (seq, digest) we committed last
        try:
            _create_private_file(self.path)
            db = self._reader()
            db.executescript(SCHEMA)
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR IGNORE INTO meta (id, ledger_id, created_at, last_checkpoint_seq, "
                "last_checkpoint_time) VALUES (1, ?, ?, 0, ?)",
                (uuid.uuid4().hex, now, now),
            )
            db.execute("COMMIT")
            row = db.execute("SELECT ledger_id, created_at FROM meta WHERE id = 1").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the audit ledger {self.path}: {exc}") from None
        self.ledger_id: str = row[0]
        self.created_at: float = float(row[1])
        self.witness_file = witness_path(self.key_file, self.ledger_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        """``<data_dir>/ledger.sqlite3``, signed with ``settings.ledger_key_file`` (default
        ``$XDG_CONFIG_HOME/faceledger/ledger.key``), which must be outside ``data_dir``."""
        key_file = resolve_key_file(settings.ledger_key_file, settings.data_dir)
        return cls(
            settings.data_dir / LEDGER_FILENAME,
            key_file=key_file,
            checkpoint_every=settings.ledger_checkpoint_every,
            checkpoint_seconds=settings.ledger_checkpoint_seconds,
        )

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # -- appending ------------------------------------------------------------------------
    def append(self, event: AuditEvent) -> LedgerEntry:
        """Record ``event``; returns once it is durably committed. ``LedgerError`` if not."""
        return self._submit([event])[0]

    def append_many(self, events: Iterable[AuditEvent]) -> list[LedgerEntry]:
        """Record several events in one transaction (all or none), in order."""
        return self._submit(list(events))

    def checkpoint(self) -> LedgerEntry:
        """Append a signed checkpoint now (covering the current head) and move the witness
        forward; returns the checkpoint record."""
        return self._submit([], force_checkpoint=True)[-1]

    @staticmethod
    def _encode(event: AuditEvent, now: float) -> tuple[float, bytes, dict[str, Any]]:
        if not isinstance(event, AuditEvent):
            raise LedgerError(f"the ledger records AuditEvent objects, not {type(event).__name__}")
        check_event(event)
        payload = {"kind": KIND_EVENT, "time": now, **event.to_dict()}
        try:
            encoded = canonical_json(payload)
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"the audit event cannot be recorded: {exc}") from None
        if len(encoded) > MAX_RECORD_BYTES:
            raise LedgerError(
                f"the audit event is {len(encoded)} bytes; at most {MAX_RECORD_BYTES} are allowed"
            )
        return now, encoded, payload

    def _submit(
        self,
        events: list[AuditEvent],
        *,
        force_checkpoint: bool = False,
        tick: bool = False,
        final: bool = False,
    ) -> list[LedgerEntry]:
        """Queue ``events`` and wait until a leader (maybe this thread) has committed them.

        Group commit without a writer thread: the first caller that finds no commit running
        becomes the leader and commits everything queued so far in one transaction, in its
        own thread; callers arriving meanwhile queue up for the next transaction, whose leader
        is the first of them to wake. An append that arrives at an idle ledger thus commits
        at once, without any hand-over between threads.
        """
        now = time.time()
        items = [self._encode(event, now) for event in events]
        if not items and not (force_checkpoint or tick or final):
            return []
        with self._cond:
            if self._closing and not final:
                raise LedgerError("the audit ledger is closed")
            if self._key is None:
                self._start()
            batch = self._pending
            first = len(batch.items)
            batch.items.extend(items)
            batch.force_checkpoint |= force_checkpoint
            batch.final |= final
            while self._committing and not batch.done.is_set():
                self._cond.wait()
            leader = not batch.done.is_set()
            if leader:
                self._committing = True
                self._pending = _Batch()
        if leader:
            self._lead(batch)
        if batch.error is not None:
            raise batch.error
        if not items:
            return batch.entries[-1:]
        return batch.entries[first : first + len(items)]

    def _start(self) -> None:
        """Load (or create) the key and start the checkpoint timer. Called with the lock held."""
        key = load_or_create_key(self.key_file)
        self._last_cp_time = self._read_meta()[1]
        self._key = key  # set last: a failed start is retried by the next append
        self._timer = threading.Thread(
            target=self._run_timer, name=f"ledger-timer-{self.ledger_id[:8]}", daemon=True
        )
        self._timer.start()

    def _read_meta(self) -> tuple[int, float]:
        row = (
            self._reader()
            .execute("SELECT last_checkpoint_seq, last_checkpoint_time FROM meta WHERE id = 1")
            .fetchone()
        )
        if row is None:
            raise LedgerError(f"the audit ledger {self.path} has lost its meta row")
        return int(row[0]), float(row[1])

    def _lead(self, batch: _Batch) -> None:
        """Commit ``batch`` (this thread is the leader), then wake everyone waiting."""
        signed: _Signed | None = None
        db: sqlite3.Connection | None = getattr(self._local, "writer", None)
        try:
            if db is None:
                db = self._local.writer = self._connect()
            batch.entries, signed = self._commit(db, batch)
        except Exception as exc:  # every caller of the batch learns; the next starts afresh
            self._local.writer = self._recover(db)
            batch.error = LedgerError(f"the audit ledger could not be written: {exc}")
            if not isinstance(exc, sqlite3.Error | OSError | LedgerError):
                logger.exception("unexpected error while committing to the ledger")
        if signed is not None and batch.force_checkpoint:
            self._write_witness(signed, batch)  # a forced checkpoint reports its witness
        with self._cond:
            self._committing = False
            batch.done.set()
            self._cond.notify_all()
        if signed is not None and not batch.force_checkpoint:
            self._write_witness(signed, None)

    def _run_timer(self) -> None:
        """Sign unsigned records of ours ``checkpoint_seconds`` after the last checkpoint,
        even when no further append comes to do it."""
        while not self._closing:
            timeout = None
            if self._dirty:
                timeout = max(0.0, self._last_cp_time + self.checkpoint_seconds - time.time())
            self._wake_timer.wait(timeout)
            self._wake_timer.clear()
            if self._closing:
                return
            if self._dirty and time.time() - self._last_cp_time >= self.checkpoint_seconds:
                try:
                    self._submit([], tick=True)
                except LedgerError as exc:
                    if not self._closing:  # close() signs instead
                        logger.error("timed ledger checkpoint failed: %s", exc.message)

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

    def _write_witness(self, signed: _Signed, batch: _Batch | None) -> None:
        try:
            write_witness(self.witness_file, signed.witness)
        except OSError as exc:
            message = (
                f"checkpoint {signed.witness.seq} is committed but the witness "
                f"{self.witness_file} could not be written: {exc.strerror or exc}"
            )
            if batch is not None:
                batch.error = LedgerError(message)
            else:
                logger.error("%s (a truncated tail may go unnoticed)", message)

    def _commit(
        self, db: sqlite3.Connection, batch: _Batch
    ) -> tuple[list[LedgerEntry], _Signed | None]:
        """One transaction: the batch's records, then a checkpoint if one is due."""
        now = time.time()
        if not batch.items and not batch.force_checkpoint and not self._dirty:
            return [], None  # closing, or the timer, with nothing of ours unsigned
        db.execute("BEGIN IMMEDIATE")
        head = db.execute("SELECT seq, digest FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (int(head[0]), bytes(head[1])) if head is not None else (0, bytes(32))
        meta = db.execute(
            "SELECT last_checkpoint_seq, last_checkpoint_time FROM meta WHERE id = 1"
        ).fetchone()
        if meta is None:
            raise LedgerError("the ledger's meta row is missing")
        last_cp_seq, last_cp_time = int(meta[0]), float(meta[1])
        self._check_ours(db, seq, prev)
        rows: list[tuple[int, bytes, bytes]] = []
        entries: list[LedgerEntry] = []
        for when, encoded, payload in batch.items:
            seq += 1
            body, prev = link(seq, prev, KIND_EVENT, encoded)
            rows.append((seq, body, prev))
            entries.append(LedgerEntry(seq, when, prev.hex(), payload))
        unsigned = seq - last_cp_seq
        due = (
            batch.force_checkpoint
            or unsigned >= self.checkpoint_every
            or (unsigned > 0 and (batch.final or now - last_cp_time >= self.checkpoint_seconds))
        )
        signed = None
        if due:
            assert self._key is not None
            covers = prev.hex()
            payload = checkpoint_payload(self._key, self.ledger_id, seq, covers, now)
            seq += 1
            body, prev = link(seq, prev, KIND_CHECKPOINT, canonical_json(payload))
            rows.append((seq, body, prev))
            entries.append(LedgerEntry(seq, now, prev.hex(), payload))
            db.execute(
                "UPDATE meta SET last_checkpoint_seq = ?, last_checkpoint_time = ? WHERE id = 1",
                (seq, now),
            )
            signed = _Signed(
                Witness(
                    ledger_id=self.ledger_id,
                    seq=seq,
                    digest=prev.hex(),
                    covers_seq=seq - 1,
                    covers_digest=covers,
                    hmac=payload["hmac"],
                    time=now,
                    ledger_path=str(self.path.resolve()),
                )
            )
        db.executemany("INSERT INTO records (seq, body, digest) VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
        if rows:
            self._last_written = (seq, prev)
        if signed is not None or unsigned == 0:  # unsigned == 0: another process signed ours
            self._last_cp_time, self._dirty = (now if signed else last_cp_time), False
        else:
            self._last_cp_time = last_cp_time
            if batch.items and not self._dirty:
                self._dirty = True
                self._wake_timer.set()  # the timer now has a deadline
        return entries, signed

    def _check_ours(self, db: sqlite3.Connection, head_seq: int, head_digest: bytes) -> None:
        """Refuse to extend (and later sign) a chain in which the last record this process
        wrote has changed since: someone rewrote it, recomputing digests so that the chain
        still links, and the next checkpoint would vouch for the rewrite."""
        if self._last_written is None:
            return
        seq, digest = self._last_written
        if head_seq == seq:
            found: bytes | None = head_digest
        else:
            row = db.execute("SELECT digest FROM records WHERE seq = ?", (seq,)).fetchone()
            found = bytes(row[0]) if row is not None and isinstance(row[0], bytes) else None
        if head_seq < seq or found != digest:
            logger.error("the audit ledger %s was rewritten under this process", self.path)
            raise LedgerTamperedError(
                f"record {seq} of the audit ledger changed after this process wrote it "
                "(the file was rewritten); refusing to extend it: run `faceledger audit verify`"
            )

    # -- reading --------------------------------------------------------------------------
    def last_seq(self) -> int:
        """The seq of the newest record (0 for an empty ledger)."""
        row = self._reader().execute("SELECT max(seq) FROM records").fetchone()
        return int(row[0] or 0)

    def entries(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        principal: str | None = None,
        collection_id: str | None = None,
        operation: str | None = None,
        outcome: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        include_checkpoints: bool = False,
    ) -> Iterator[LedgerEntry]:
        """Records matching every filter given (times in epoch seconds, ``since`` inclusive,
        ``until`` exclusive), oldest first unless ``newest_first``. Checkpoints are left out
        unless ``include_checkpoints`` (and no event filter is given)."""
        conditions: list[str] = []
        params: list[Any] = []
        if not include_checkpoints:
            conditions.append(_EVENT_SQL)
        for name, value in (
            ("principal", principal),
            ("collection_id", collection_id),
            ("operation", operation),
            ("outcome", outcome),
        ):
            if value is not None:
                conditions.append(f"json_extract({_JSON_SQL}, '$.{name}') = ?")
                params.append(value)
        if since is not None:
            conditions.append(f"json_extract({_JSON_SQL}, '$.time') >= ?")
            params.append(float(since))
        if until is not None:
            conditions.append(f"json_extract({_JSON_SQL}, '$.time') < ?")
            params.append(float(until))
        sql = "SELECT seq, body, digest FROM records"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY seq" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._iter_entries(sql, params)

    def _iter_entries(self, sql: str, params: list[Any]) -> Iterator[LedgerEntry]:
        cursor = self._reader().execute(sql, params)
        try:
            for rows in iter(partial(cursor.fetchmany, 1000), []):
                for seq, body, digest in rows:
                    try:
                        payload = body_payload(body)
                    except (ValueError, TypeError):
                        raise LedgerTamperedError(
                            f"ledger record {seq} cannot be decoded; run `faceledger audit verify`"
                        ) from None
                    when = float(payload.get("time", 0.0))
                    yield LedgerEntry(int(seq), when, bytes(digest).hex(), payload)
        finally:
            cursor.close()

    # -- verification ---------------------------------------------------------------------
    def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Check the whole chain, every checkpoint's signature and the witness; see
        ``faceledger.audit.verify``. Does not need the writer; safe while others append."""
        key = load_key(self.key_file)
        witness = read_witness(self.witness_file)  # read before the rows: it only moves forward
        db = self._reader()
        db.execute("BEGIN")  # one snapshot for the whole pass
        try:
            total = int(db.execute("SELECT max(seq) FROM records").fetchone()[0] or 0)
            cursor = db.execute("SELECT seq, body, digest FROM records ORDER BY seq")

            def digest_at(seq: int) -> bytes | None:
                row = db.execute("SELECT digest FROM records WHERE seq = ?", (seq,)).fetchone()
                return bytes(row[0]) if row is not None and isinstance(row[0], bytes) else None

            report = verify_chain(
                iter(partial(cursor.fetchmany, _FETCH_ROWS), []),
                ledger_id=self.ledger_id,
                key=key,
                key_file=self.key_file,
                witness=witness,
                witness_file=self.witness_file,
                digest_at=digest_at,
                total=total,
                progress=progress,
            )
            cursor.close()
        finally:
            db.execute("COMMIT")
        if report.ok:
            report = self._check_replaced(report)
        return report

    def _check_replaced(self, report: VerifyReport) -> VerifyReport:
        """Fail if a witness says another ledger lived at this path (deleted or replaced)."""
        here = str(self.path.resolve())
        for path, witness in witnesses_in(self.key_file.parent):
            if witness.ledger_path == here and witness.ledger_id != self.ledger_id:
                return VerifyReport(
                    ok=False,
                    records=report.records,
                    checkpoints=report.checkpoints,
                    first_bad_seq=None,
                    reason=(
                        f"the witness {path} says ledger {witness.ledger_id} with at least "
                        f"{witness.seq} records lived at {here}, but this is ledger "
                        f"{self.ledger_id}: the ledger was deleted or replaced (if that was "
                        "deliberate, move that witness file away)"
                    ),
                    last_seq=report.last_seq,
                    last_checkpoint_seq=report.last_checkpoint_seq,
                    witness_seq=report.witness_seq,
                    seconds=report.seconds,
                    warnings=report.warnings,
                )
        return report

    # -- closing --------------------------------------------------------------------------
    def close(self) -> None:
        """Sign what this process appended (a final checkpoint), stop the checkpoint timer and
        close this thread's connections. Further appends raise ``LedgerError``."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            started = self._key is not None
        self._wake_timer.set()
        if self._timer is not None:
            self._timer.join()
        if started:
            try:
                self._submit([], final=True)
            except LedgerError as exc:
                logger.error("the final ledger checkpoint failed: %s", exc.message)
        for name in ("db", "writer"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                setattr(self._local, name, None)
