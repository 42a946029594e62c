"""What every ledger backend shares: group commit, checkpoints, reading and verification.

``ChainLedger`` holds the logic; a backend (``faceledger.audit.ledger.Ledger`` on SQLite,
``faceledger.audit.postgres.PostgresLedger`` on PostgreSQL) only supplies storage: a write
transaction that holds the ledger's lock across processes (``_writing``, yielding a
``LedgerWrite``), the queries behind ``entries``, ``last_seq`` and ``verify``, and closing its
connections. Both store the same rows ``(seq, body, digest)`` (format in ``chain``), so a
record's digest does not depend on where it is kept.

**Group commit.** Appends from many threads are committed in batches, one transaction (one
durable commit) each, by a *leader*: the calling thread that finds no commit running commits
everything queued so far, while callers arriving meanwhile queue for the next batch (see
``_submit``). Inside the transaction the leader reads the chain head under the backend's lock,
so several *processes* appending to the same ledger still form one chain.

**Checkpoints.** Every ``checkpoint_every`` records or ``checkpoint_seconds`` (a timer thread
signs an idle tail; and at ``close()``), a checkpoint record signed with the ledger key is
appended in the same transaction, and the witness file next to the key is moved forward (see
``signing``).

**Every record authenticated.** Each record carries a MAC under the ledger key (``keyring``),
and after every commit the tip file beside the key names the newest record. A writer verifies
before it extends: on start, every record since the last signed checkpoint (the witness) up to
the head, and the tip; before each commit, whatever other processes appended since it last
looked. So no record it has not verified is ever followed by its records or signed by its
checkpoints. When that check fails the ledger refuses every append (``LedgerTamperedError``,
saying why) until an operator acts (``faceledger audit verify``; see the README).

**Intents.** An event with ``phase`` "intent" opens an entry in the backend's open-intents
table in the same transaction; one with ``phase`` "outcome" or "recovered" closes it
(``open_intents``; reconciled by the gateway).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Self

from faceledger.audit.chain import (
    KIND_CHECKPOINT,
    KIND_EVENT,
    KIND_ROTATION,
    body_payload,
    canonical_json,
    link,
)
from faceledger.audit.guard import MAX_FIELD_CHARS, MAX_RECORD_BYTES, bound_event, check_event
from faceledger.audit.intents import OpenIntent, process_owner
from faceledger.audit.keyring import Keyring, RecordSigner, key_id, retired_key_file
from faceledger.audit.signing import (
    KEY_BYTES,
    Tip,
    TipFile,
    Witness,
    checkpoint_payload,
    load_or_create_key,
    read_tip,
    read_witness,
    tip_path,
    witness_path,
    witnesses_in,
    write_witness,
)
from faceledger.audit.verify import (
    MacRule,
    Progress,
    Row,
    VerifyReport,
    tip_signed,
    verify_chain,
)
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import FaceLedgerError, LedgerError, LedgerTamperedError

logger = logging.getLogger(__name__)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file ``path`` durably (replacing a leftover)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# The filters ``entries`` accepts on an event's JSON fields (string equality).
FIELD_FILTERS = ("principal", "collection_id", "operation", "outcome")


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
            phase=p.get("phase"),
            intent_id=p.get("intent_id"),
        )

    def to_dict(self) -> dict[str, Any]:
        """``seq``, ``digest`` and the payload's fields, flat (for JSON output)."""
        return {"seq": self.seq, "digest": self.digest, **self.payload}


@dataclass(frozen=True)
class EntryQuery:
    """What ``entries`` asks a backend for: rows whose event fields equal ``fields`` and whose
    time is in ``[since, until)``; events only unless ``include_checkpoints``."""

    fields: Mapping[str, str]
    since: float | None
    until: float | None
    limit: int | None
    newest_first: bool
    include_checkpoints: bool


class LedgerWrite(Protocol):
    """One open write transaction that holds the ledger's lock (one writer at a time, across
    processes); committed when the ``_writing`` block exits without error."""

    def head(self) -> tuple[int, bytes]:
        """``(seq, digest)`` of the newest record; ``(0, 32 zero bytes)`` when empty."""

    def checkpoint_state(self) -> tuple[int, float]:
        """``(seq, time)`` of the last checkpoint (seq 0 and the creation time if none)."""

    def digest_at(self, seq: int) -> bytes | None:
        """The stored digest of record ``seq`` (None if there is none)."""

    def rows_after(self, seq: int) -> Sequence[Row]:
        """``(seq, body, digest, mac)`` of every record after ``seq``, in order."""

    def insert(self, rows: Sequence[Row]) -> None:
        """Insert ``(seq, body, digest, mac)`` rows."""

    def mark_checkpoint(self, seq: int, when: float) -> None:
        """Remember that record ``seq``, at ``when``, is the last checkpoint."""

    def open_intent(self, intent: OpenIntent) -> None:
        """Note an intent record without an outcome yet."""

    def close_intent(self, intent_id: str) -> None:
        """Forget an intent (its outcome is recorded in the same transaction)."""


@dataclass(frozen=True)
class VerifySnapshot:
    """One consistent view of the rows for ``verify``: how many, the rows in seq order (in
    chunks) and a lookup of any record's digest."""

    total: int
    chunks: Iterable[Sequence[Row]]
    digest_at: Callable[[int], bytes | None]


class _Batch:
    """Appends waiting for a leader; committed together, then ``done`` is set."""

    __slots__ = ("done", "entries", "error", "final", "force_checkpoint", "items", "rotate_to")

    def __init__(self) -> None:
        self.items: list[tuple[float, bytes, dict[str, Any]]] = []  # (time, json, payload)
        self.rotate_to: tuple[bytes, dict[str, Any]] | None = None  # (new key, rotation record)
        self.force_checkpoint = False
        self.final = False  # close(): sign what this process left unsigned
        self.done = threading.Event()
        self.entries: list[LedgerEntry] = []
        self.error: FaceLedgerError | None = None


class ChainLedger(ABC):
    """The hash-chained, checkpointed ledger; safe to share by threads and by processes.

    A subclass's constructor calls ``_init_signing`` and sets ``location`` (where the records
    live, as the witness records it), ``ledger_id`` and ``created_at``.
    ``key_file`` signs checkpoints. Create a ledger after any ``fork()``: its timer thread
    and connections do not survive one.
    """

    # Storage errors a failed commit is expected to raise (anything else is logged as a bug).
    storage_errors: tuple[type[Exception], ...] = (OSError,)
    location: str
    ledger_id: str
    created_at: float

    def _init_signing(
        self, key_file: Path, checkpoint_every: int, checkpoint_seconds: float
    ) -> None:
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise ValueError("checkpoint_every must be ≥ 1 and checkpoint_seconds > 0")
        self.key_file = key_file
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self._cond = threading.Condition()
        self._pending = _Batch()
        self._committing = False  # a leader is committing a batch
        self._closing = False
        self._key: bytes | None = None  # loaded by the first append (or ``open``)
        self._signer: RecordSigner | None = None  # MACs our records (the ledger's current key)
        self._rule: MacRule | None = None  # the MAC state of the verified chain
        self._verified: tuple[int, bytes] = (0, bytes(32))  # (seq, digest) checked up to
        self._macs_from = 1
        self._tampered: str | None = None  # why this writer refuses to append
        self._tip: TipFile | None = None
        self._timer: threading.Thread | None = None
        self._wake_timer = threading.Event()
        # When the last checkpoint was signed, and whether records of ours await one.
        self._last_cp_time = 0.0
        self._dirty = False

    @property
    def witness_file(self) -> Path:
        return witness_path(self.key_file, self.ledger_id)

    @property
    def tip_file(self) -> Path:
        return tip_path(self.key_file, self.ledger_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- storage, supplied by a backend ------------------------------------------------------
    @abstractmethod
    def _writing(self) -> AbstractContextManager[LedgerWrite]:
        """A write transaction holding the ledger's lock; committed durably on a clean exit,
        rolled back (and the connection recovered) when the block raises."""

    @abstractmethod
    def _checkpoint_state(self) -> tuple[int, float]:
        """``(seq, time)`` of the last checkpoint, read outside any transaction."""

    @abstractmethod
    def last_seq(self) -> int:
        """The seq of the newest record (0 for an empty ledger)."""

    @abstractmethod
    def _select(self, query: EntryQuery) -> Iterator[tuple[int, bytes, bytes]]:
        """``(seq, body, digest)`` rows answering ``query``, in its order."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[VerifySnapshot]:
        """One consistent read of every row, for ``verify``."""

    @abstractmethod
    def _close_storage(self) -> None:
        """Close the connections this ledger opened."""

    @abstractmethod
    def _open_intents(self) -> list[OpenIntent]:
        """Every intent without an outcome, oldest first."""

    @abstractmethod
    def _row_at(self, seq: int) -> tuple[int, bytes, bytes] | None:
        """``(seq, body, digest)`` of record ``seq`` (None if there is none)."""

    # -- appending ------------------------------------------------------------------------
    def append(self, event: AuditEvent) -> LedgerEntry:
        """Record ``event``; returns once it is durably committed. ``LedgerError`` if not."""
        return self._submit([event])[0]

    def append_many(self, events: Iterable[AuditEvent]) -> list[LedgerEntry]:
        """Record several events in one transaction (all or none), in order.

        Kept although only tests call it: they seed large ledgers with it and race batches of
        several records from many writers through the same commit path as ``append``."""
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
            if len(encoded) > MAX_FIELD_CHARS:  # only then can a string be over its bound
                bounded = bound_event(event)
                if bounded is not event:
                    payload = {"kind": KIND_EVENT, "time": now, **bounded.to_dict()}
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
        rotate: tuple[bytes, dict[str, Any]] | None = None,
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
        if not items and not (force_checkpoint or tick or final or rotate):
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
            if rotate is not None:
                batch.rotate_to = rotate
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

    def open(self) -> None:
        """Load the key and verify the records since the last signed checkpoint (what the first
        append does anyway); ``LedgerTamperedError`` saying why if they do not verify. A server
        calls it at start so that it refuses to serve a bent ledger."""
        with self._cond:
            if self._key is None:
                self._start()
        if self._tampered is not None:
            raise LedgerTamperedError(self._tampered)

    def _start(self) -> None:
        """Load (or create) the key, verify the tail and start the checkpoint timer. Called
        with the lock held."""
        if self._tampered is not None:
            raise LedgerTamperedError(self._tampered)
        load_or_create_key(self.key_file)
        keyring = Keyring.load(self.key_file)
        try:
            self._last_cp_time = self._checkpoint_state()[1]
            with self._writing() as tx:  # a consistent read of the tail, under the lock
                self._verify_tail_at_start(tx, keyring)
        except self.storage_errors as exc:
            raise LedgerError(f"the audit ledger could not be read: {exc}") from None
        self._tip = TipFile(self.tip_file)
        assert self._signer is not None
        self._key = self._signer.key  # set last: a failed start is retried by the next append
        self._timer = threading.Thread(
            target=self._run_timer, name=f"ledger-timer-{self.ledger_id[:8]}", daemon=True
        )
        self._timer.start()

    def _refuse(self, reason: str) -> LedgerTamperedError:
        """Stop appending for good (this process) and say why."""
        self._tampered = (
            f"the audit ledger {self.location} failed verification: {reason}. FaceLedger "
            "refuses to write to it: run `faceledger audit verify`, keep the ledger and the "
            "key folder as evidence, and see the README (ledger incidents)"
        )
        logger.error("%s", self._tampered)
        return LedgerTamperedError(self._tampered)

    def _verify_tail_at_start(self, tx: LedgerWrite, keyring: Keyring) -> None:
        """Check every record after the witness's signed checkpoint (all of them when there is
        none) with their MACs, and that the chain still reaches the tip; choose the key."""
        witness = read_witness(self.witness_file)
        tip = read_tip(self.tip_file)
        head_seq, head_digest = tx.head()
        after = (0, bytes(32))
        if witness is not None and witness.ledger_id == self.ledger_id and witness.seq > 0:
            stored = tx.digest_at(witness.seq)
            if stored is None or stored.hex() != witness.digest:
                raise self._refuse(
                    f"record {witness.seq}, the checkpoint the witness {self.witness_file} "
                    "names, is missing or changed"
                )
            after = (witness.seq, stored)
        if tip is not None and tip.ledger_id == self.ledger_id and not tip_signed(keyring, tip):
            raise self._refuse(f"the tip {self.tip_file} is not signed by the ledger key")
        macs_from = tip.macs_from if tip is not None else None
        rule = MacRule(keyring, macs_from, self.key_file)
        rows = tx.rows_after(after[0])
        report = verify_chain(
            [rows],
            ledger_id=self.ledger_id,
            keyring=keyring,
            key_file=self.key_file,
            witness=None,
            witness_file=self.witness_file,
            tip=tip,
            tip_file=self.tip_file,
            digest_at=tx.digest_at,
            after=after,
            rule=rule,
        )
        if not report.ok:
            raise self._refuse(report.reason or "the chain does not verify")
        kid = rule.expected_kid or (bytes.fromhex(tip.key_id) if tip is not None else None)
        signer = keyring.signer(kid) if kid is not None else keyring.current
        if signer is None:
            raise self._refuse(
                f"the ledger's records are MAC'd with key {kid.hex() if kid else '?'}, which "
                f"is not the key in {self.key_file} nor a retired key beside it"
            )
        if tip is not None and signer.kid.hex() != tip.key_id:
            raise self._refuse(
                f"the newest records are MAC'd with key {signer.kid.hex()}, but the tip "
                f"{self.tip_file} names key {tip.key_id} (a retired or foreign key was used)"
            )
        self._signer = signer
        self._rule = rule
        rule.expected_kid = signer.kid
        if macs_from is None:  # no tip yet: records so far were written before MACs existed
            macs_from = report.macs_from if report.macs_from is not None else head_seq + 1
        self._macs_from = macs_from
        rule.macs_from = macs_from
        self._verified = (head_seq, head_digest)

    def _check_tail(self, tx: LedgerWrite, head_seq: int, head_digest: bytes) -> None:
        """Verify what other processes appended since this one last looked, before extending
        it (and before any checkpoint of ours signs it)."""
        seq, digest = self._verified
        if (head_seq, head_digest) == (seq, digest):
            return
        if head_seq < seq:
            raise self._refuse(
                f"the ledger now ends at record {head_seq}, but this process saw record {seq} "
                "(records were removed, or an older copy was put in place)"
            )
        if seq > 0 and tx.digest_at(seq) != digest:
            raise self._refuse(
                f"record {seq} changed after this process verified it (the ledger was rewritten)"
            )
        assert self._rule is not None
        report = verify_chain(
            [tx.rows_after(seq)],
            ledger_id=self.ledger_id,
            keyring=self._rule.keyring,
            key_file=self.key_file,
            witness=None,
            witness_file=self.witness_file,
            tip=None,
            tip_file=self.tip_file,
            digest_at=tx.digest_at,
            after=(seq, digest),
            rule=self._rule,
        )
        if not report.ok:
            raise self._refuse(report.reason or "the chain does not verify")
        if report.last_seq != head_seq:
            raise self._refuse(f"records after {report.last_seq} could not be read")
        kid = self._rule.expected_kid
        assert self._signer is not None
        if kid is not None and kid != self._signer.kid:  # another process rotated the key
            keyring = Keyring.load(self.key_file)
            signer = keyring.signer(kid)
            if signer is None:
                raise self._refuse(f"the ledger was rotated to key {kid.hex()}, which is unknown")
            self._rule.keyring, self._signer, self._key = keyring, signer, signer.key
        self._verified = (head_seq, head_digest)

    def _lead(self, batch: _Batch) -> None:
        """Commit ``batch`` (this thread is the leader), then wake everyone waiting."""
        witness: Witness | None = None
        try:
            batch.entries, witness = self._commit(batch)
        except LedgerTamperedError as exc:
            batch.error = exc
        except Exception as exc:  # every caller of the batch learns; the next starts afresh
            batch.error = LedgerError(f"the audit ledger could not be written: {exc}")
            if not isinstance(exc, (*self.storage_errors, LedgerError)):
                logger.exception("unexpected error while committing to the ledger")
        if witness is not None and batch.force_checkpoint:
            self._write_witness(witness, batch)  # a forced checkpoint reports its witness
        with self._cond:
            self._committing = False
            batch.done.set()
            self._cond.notify_all()
        if witness is not None and not batch.force_checkpoint:
            self._write_witness(witness, None)

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

    def _write_witness(self, witness: Witness, batch: _Batch | None) -> None:
        try:
            write_witness(self.witness_file, witness)
        except OSError as exc:
            message = (
                f"checkpoint {witness.seq} is committed but the witness "
                f"{self.witness_file} could not be written: {exc.strerror or exc}"
            )
            if batch is not None:
                batch.error = LedgerError(message)
            else:
                logger.error("%s (a truncated tail may go unnoticed)", message)

    def _commit(self, batch: _Batch) -> tuple[list[LedgerEntry], Witness | None]:
        """One transaction: the batch's records, then a checkpoint if one is due."""
        if self._tampered is not None:
            raise LedgerTamperedError(self._tampered)
        now = time.time()
        if not batch.items and not (batch.force_checkpoint or batch.rotate_to) and not self._dirty:
            return [], None  # closing, or the timer, with nothing of ours unsigned
        entries: list[LedgerEntry] = []
        rows: list[Row] = []
        witness = None
        with self._writing() as tx:
            seq, prev = tx.head()
            last_cp_seq, last_cp_time = tx.checkpoint_state()
            self._check_tail(tx, seq, prev)
            signer = self._signer
            assert signer is not None
            for when, encoded, payload in batch.items:
                seq += 1
                body, prev = link(seq, prev, KIND_EVENT, encoded)
                rows.append((seq, body, prev, signer.mac(body)))
                entries.append(LedgerEntry(seq, when, prev.hex(), payload))
                self._note_intent(tx, seq, when, payload)
            if batch.rotate_to is not None:
                new_key, rotation = batch.rotate_to
                seq += 1
                body, prev = link(seq, prev, KIND_ROTATION, canonical_json(rotation))
                rows.append((seq, body, prev, signer.mac(body)))  # the old key vouches
                entries.append(LedgerEntry(seq, now, prev.hex(), rotation))
                signer = RecordSigner(new_key)
            unsigned = seq - last_cp_seq
            due = (
                batch.force_checkpoint
                or batch.rotate_to is not None
                or unsigned >= self.checkpoint_every
                or (unsigned > 0 and (batch.final or now - last_cp_time >= self.checkpoint_seconds))
            )
            if due:
                covers = prev.hex()
                payload = checkpoint_payload(signer.key, self.ledger_id, seq, covers, now)
                seq += 1
                body, prev = link(seq, prev, KIND_CHECKPOINT, canonical_json(payload))
                rows.append((seq, body, prev, signer.mac(body)))
                entries.append(LedgerEntry(seq, now, prev.hex(), payload))
                tx.mark_checkpoint(seq, now)
                witness = Witness(
                    ledger_id=self.ledger_id,
                    seq=seq,
                    digest=prev.hex(),
                    covers_seq=seq - 1,
                    covers_digest=covers,
                    hmac=payload["hmac"],
                    time=now,
                    ledger_path=self.location,
                )
            tx.insert(rows)
        if rows:
            self._verified = (seq, prev)
            if signer is not self._signer:
                self._signer, self._key = signer, signer.key
                assert self._rule is not None
                known = [s.key for s in self._rule.keyring.all()]
                self._rule.keyring = Keyring(known, signer.key)
                self._rule.expected_kid = signer.kid
            self._write_tip(seq, prev, sync=witness is not None)
        if witness is not None or unsigned == 0:  # unsigned == 0: another process signed ours
            self._last_cp_time, self._dirty = (now if witness else last_cp_time), False
        else:
            self._last_cp_time = last_cp_time
            if batch.items and not self._dirty:
                self._dirty = True
                self._wake_timer.set()  # the timer now has a deadline
        return entries, witness

    @staticmethod
    def _note_intent(tx: LedgerWrite, seq: int, when: float, payload: dict[str, Any]) -> None:
        phase, intent_id = payload.get("phase"), payload.get("intent_id")
        if not intent_id:
            return
        if phase == "intent":
            tx.open_intent(OpenIntent(str(intent_id), seq, process_owner(), when))
        elif phase in ("outcome", "recovered"):
            tx.close_intent(str(intent_id))

    def _write_tip(self, seq: int, digest: bytes, *, sync: bool) -> None:
        """Move the tip file to the record just committed (see ``signing.Tip``)."""
        assert self._signer is not None and self._tip is not None
        unsigned = Tip(self.ledger_id, seq, digest.hex(), self._macs_from, self._signer.kid.hex())
        tip = replace(unsigned, mac=self._signer.hmac(unsigned.message()).hex())
        try:
            self._tip.write(tip, sync=sync)
        except OSError as exc:
            logger.error("the ledger tip %s could not be written: %s", self.tip_file, exc)

    # -- key rotation -----------------------------------------------------------------------
    def rotate_key(self, principal: str) -> str:
        """Rotate the ledger key: a rotation record MAC'd with the old key names the new one,
        a checkpoint signed with the new key follows, then the old key is kept beside the new
        as ``<key file>.<old id>.retired`` and the new key replaces the key file. Returns the
        new key id (hex). Other processes appending to this ledger pick the new key up from
        the rotation record when they next verify the tail."""
        new_key = secrets.token_bytes(KEY_BYTES)
        new_id = key_id(new_key)
        pending = self.key_file.with_name(f"{self.key_file.name}.{new_id.hex()}.retired")
        _write_private(pending, new_key)  # known to verifiers before any record uses it
        self.open()
        assert self._signer is not None
        old = self._signer
        rotation = {
            "kind": KIND_ROTATION,
            "time": time.time(),
            "ledger_id": self.ledger_id,
            "old_key_id": old.kid.hex(),
            "new_key_id": new_id.hex(),
            "principal": principal,
        }
        self._submit([], rotate=(new_key, rotation))
        retired = retired_key_file(self.key_file, old.kid)
        if not retired.exists():
            _write_private(retired, old.key)
        tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.rotating")
        _write_private(tmp, new_key)
        os.replace(tmp, self.key_file)
        pending.unlink(missing_ok=True)
        logger.info(
            "rotated the ledger key %s: %s → %s", self.key_file, old.kid.hex(), new_id.hex()
        )
        return new_id.hex()

    def checkpoint_position(self) -> tuple[int, float]:
        """``(seq, time)`` of the last signed checkpoint (seq 0 and the creation time if none);
        ``LedgerError`` if the ledger cannot be read."""
        try:
            return self._checkpoint_state()
        except self.storage_errors as exc:
            raise LedgerError(f"the audit ledger could not be read: {exc}") from None

    @property
    def writable(self) -> bool:
        """Whether this writer still appends (not closed, and its checks have not failed)."""
        return self._tampered is None and not self._closing

    def open_intents(self) -> list[OpenIntent]:
        """Intents recorded without an outcome (oldest first)."""
        try:
            return self._open_intents()
        except self.storage_errors as exc:
            raise LedgerError(f"the audit ledger could not be read: {exc}") from None

    def entry_at(self, seq: int) -> LedgerEntry | None:
        """The record ``seq`` (None if there is none)."""
        row = self._row_at(seq)
        if row is None:
            return None
        return next(self._decode(iter([row])))

    # -- reading --------------------------------------------------------------------------
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
        values = (principal, collection_id, operation, outcome)
        query = EntryQuery(
            fields={k: v for k, v in zip(FIELD_FILTERS, values, strict=True) if v is not None},
            since=None if since is None else float(since),
            until=None if until is None else float(until),
            limit=None if limit is None else int(limit),
            newest_first=newest_first,
            include_checkpoints=include_checkpoints,
        )
        return self._decode(self._select(query))

    @staticmethod
    def _decode(rows: Iterator[tuple[int, bytes, bytes]]) -> Iterator[LedgerEntry]:
        for seq, body, digest in rows:
            try:
                payload = body_payload(bytes(body))
            except (ValueError, TypeError):
                raise LedgerTamperedError(
                    f"ledger record {seq} cannot be decoded; run `faceledger audit verify`"
                ) from None
            when = float(payload.get("time", 0.0))
            yield LedgerEntry(int(seq), when, bytes(digest).hex(), payload)

    # -- verification ---------------------------------------------------------------------
    def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Check the whole chain, every checkpoint's signature and the witness; see
        ``faceledger.audit.verify``. Does not need the writer; safe while others append."""
        keyring = Keyring.load(self.key_file)
        witness = read_witness(self.witness_file)  # read before the rows: it only moves forward
        tip = read_tip(self.tip_file)
        with self._snapshot() as snapshot:
            report = verify_chain(
                snapshot.chunks,
                ledger_id=self.ledger_id,
                keyring=keyring,
                key_file=self.key_file,
                witness=witness,
                witness_file=self.witness_file,
                tip=tip,
                tip_file=self.tip_file,
                digest_at=snapshot.digest_at,
                total=snapshot.total,
                progress=progress,
            )
        if report.ok:
            report = self._check_replaced(report)
        return report

    def _check_replaced(self, report: VerifyReport) -> VerifyReport:
        """Fail if a witness says another ledger lived here (deleted or replaced)."""
        for path, witness in witnesses_in(self.key_file.parent):
            if witness.ledger_path == self.location and witness.ledger_id != self.ledger_id:
                return VerifyReport(
                    ok=False,
                    records=report.records,
                    checkpoints=report.checkpoints,
                    first_bad_seq=None,
                    reason=(
                        f"the witness {path} says ledger {witness.ledger_id} with at least "
                        f"{witness.seq} records lived at {self.location}, but this is ledger "
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
        close the connections. Further appends raise ``LedgerError``."""
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
        if self._tip is not None:
            self._tip.close()
        self._close_storage()
