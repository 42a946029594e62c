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
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from faceledger.audit.batch import Batch, PendingRows
from faceledger.audit.chain import KIND_EVENT, KIND_ROTATION, canonical_json
from faceledger.audit.guard import MAX_FIELD_CHARS, MAX_RECORD_BYTES, bound_event, check_event
from faceledger.audit.intents import OpenIntent, process_owner
from faceledger.audit.keyring import Keyring, RecordSigner, install_key, key_id, stage_key
from faceledger.audit.parallel import ParallelPlan
from faceledger.audit.records import (
    FIELD_FILTERS,
    EntryQuery,
    LedgerEntry,
    LedgerWrite,
    VerifySnapshot,
    decode_rows,
)
from faceledger.audit.signing import (
    KEY_BYTES,
    Tip,
    TipFile,
    Witness,
    load_or_create_key,
    write_witness,
)
from faceledger.audit.tail import TailRefused, TailVerifier
from faceledger.audit.verify import (
    Anchors,
    Progress,
    VerifyReport,
    check_not_replaced,
    verify_chain,
)
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError, LedgerTamperedError

# The record shapes live in ``records``; a backend imports them from here with the base class.
__all__ = [
    "FIELD_FILTERS",
    "ChainLedger",
    "EntryQuery",
    "LedgerEntry",
    "LedgerWrite",
    "VerifySnapshot",
]

logger = logging.getLogger(__name__)


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
        self._pending = Batch()
        self._committing = False  # a leader is committing a batch
        self._closing = False
        self._started = False  # the key loaded and the tail verified (first append, ``open``)
        self._tail: TailVerifier | None = None  # made by ``_start`` (the ledger id is known)
        self._tampered: str | None = None  # why this writer refuses to append
        self._tip: TipFile | None = None
        self._timer: threading.Thread | None = None
        self._wake_timer = threading.Event()
        # When the last checkpoint was signed, and whether records of ours await one.
        self._last_cp_time = 0.0
        self._dirty = False

    @property
    def anchors(self) -> Anchors:
        """Where this ledger's witness and tip live (beside the key), not yet read."""
        return Anchors(self.ledger_id, self.key_file)

    @property
    def witness_file(self) -> Path:
        return self.anchors.witness_file

    @property
    def tip_file(self) -> Path:
        return self.anchors.tip_file

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

    def _verify_in_parallel(
        self, anchors: Anchors, keyring: Keyring, plan: ParallelPlan, progress: Progress | None
    ) -> VerifyReport | None:
        """The passing report of ``verify`` checked by several processes, or None (this
        backend cannot, the plan does not apply, or the chain does not pass: then the one
        pass judges it)."""
        return None

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
            if not self._started:
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
                self._pending = Batch()
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
            if not self._started:
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
        tail = TailVerifier(self.anchors)
        try:
            self._last_cp_time = self._checkpoint_state()[1]
            with self._writing() as tx:  # a consistent read of the tail, under the lock
                self._checked(tail.start, tx, keyring)
        except self.storage_errors as exc:
            raise LedgerError(f"the audit ledger could not be read: {exc}") from None
        self._tail = tail
        self._tip = TipFile(self.tip_file)
        self._started = True  # set last: a failed start is retried by the next append
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

    def _checked(self, check: Callable[..., None], *args: Any) -> None:
        """Run one of the tail checks (``TailVerifier``); refuse for good when it fails."""
        try:
            check(*args)
        except TailRefused as exc:
            raise self._refuse(exc.reason) from None

    def _lead(self, batch: Batch) -> None:
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

    def _write_witness(self, witness: Witness, batch: Batch | None) -> None:
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

    def _commit(self, batch: Batch) -> tuple[list[LedgerEntry], Witness | None]:
        """One transaction: the batch's records, then a checkpoint if one is due."""
        if self._tampered is not None:
            raise LedgerTamperedError(self._tampered)
        now = time.time()
        if not batch.items and not (batch.force_checkpoint or batch.rotate_to) and not self._dirty:
            return [], None  # closing, or the timer, with nothing of ours unsigned
        tail = self._tail
        assert tail is not None
        witness = None
        with self._writing() as tx:
            head = tx.head()
            last_cp_seq, last_cp_time = tx.checkpoint_state()
            self._checked(tail.catch_up, tx, *head)
            assert tail.signer is not None
            pending = PendingRows(*head, tail.signer)
            for when, encoded, payload in batch.items:
                pending.add(KIND_EVENT, encoded, when, payload)
                self._note_intent(tx, pending.seq, when, payload)
            if batch.rotate_to is not None:
                new_key, rotation = batch.rotate_to
                pending.add(KIND_ROTATION, canonical_json(rotation), now, rotation)  # old key
                pending.signer = RecordSigner(new_key)  # vouches; the new one signs from here
            unsigned = pending.seq - last_cp_seq
            if batch.checkpoint_due(
                unsigned,
                every=self.checkpoint_every,
                seconds=self.checkpoint_seconds,
                now=now,
                last_cp_time=last_cp_time,
            ):
                witness = pending.add_checkpoint(self.ledger_id, self.location, now)
                tx.mark_checkpoint(pending.seq, now)
            tx.insert(pending.rows)
        if pending.rows:
            self._committed(tail, pending, sync=witness is not None)
        self._note_signing(
            batch, now, last_cp_time, checkpointed=witness is not None, unsigned=unsigned
        )
        return pending.entries, witness

    def _committed(self, tail: TailVerifier, pending: PendingRows, *, sync: bool) -> None:
        """After ``pending`` is committed: it is verified, its signer ours, the tip moves."""
        tail.verified = (pending.seq, pending.prev)
        if pending.signer is not tail.signer:
            tail.adopt(pending.signer)
        self._write_tip(pending.seq, pending.prev, sync=sync)

    def _note_signing(
        self, batch: Batch, now: float, last_cp_time: float, *, checkpointed: bool, unsigned: int
    ) -> None:
        """Track whether records of ours await a checkpoint, and wake the timer when they
        start to (``unsigned``: records after the last checkpoint before this commit's)."""
        if checkpointed:
            self._last_cp_time, self._dirty = now, False
        elif unsigned == 0:  # another process signed ours
            self._last_cp_time, self._dirty = last_cp_time, False
        else:
            self._last_cp_time = last_cp_time
            if batch.items and not self._dirty:
                self._dirty = True
                self._wake_timer.set()  # the timer now has a deadline

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
        tail = self._tail
        assert tail is not None and tail.signer is not None and self._tip is not None
        signer = tail.signer
        unsigned = Tip(self.ledger_id, seq, digest.hex(), tail.macs_from, signer.kid.hex())
        tip = replace(unsigned, mac=signer.hmac(unsigned.message()).hex())
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
        staged = stage_key(self.key_file, new_key)  # known to verifiers before any record uses it
        self.open()
        assert self._tail is not None and self._tail.signer is not None
        old = self._tail.signer
        rotation = {
            "kind": KIND_ROTATION,
            "time": time.time(),
            "ledger_id": self.ledger_id,
            "old_key_id": old.kid.hex(),
            "new_key_id": new_id.hex(),
            "principal": principal,
        }
        self._submit([], rotate=(new_key, rotation))
        install_key(self.key_file, new_key, old_key=old.key, staged=staged)
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
        return next(decode_rows(iter([row])))

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
        contains: bytes | None = None,
    ) -> Iterator[LedgerEntry]:
        """Records matching every filter given (times in epoch seconds, ``since`` inclusive,
        ``until`` exclusive), oldest first unless ``newest_first``. Checkpoints are left out
        unless ``include_checkpoints`` (and no event filter is given). ``contains``: only
        bodies holding those bytes, tested by the database before anything is decoded (field
        filters have it parse every record's JSON)."""
        values = (principal, collection_id, operation, outcome)
        query = EntryQuery(
            fields={k: v for k, v in zip(FIELD_FILTERS, values, strict=True) if v is not None},
            since=None if since is None else float(since),
            until=None if until is None else float(until),
            limit=None if limit is None else int(limit),
            newest_first=newest_first,
            include_checkpoints=include_checkpoints,
            contains=contains,
        )
        return decode_rows(self._select(query))

    # -- verification ---------------------------------------------------------------------
    def verify(
        self, *, progress: Progress | None = None, plan: ParallelPlan | None = None
    ) -> VerifyReport:
        """Check the whole chain, every checkpoint's signature and the witness; see
        ``faceledger.audit.verify``. Does not need the writer; safe while others append.
        ``plan``: how many processes may share the work (default: one per CPU, for long
        ledgers on a backend that can; ``faceledger.audit.parallel``) — the report is the
        one pass's either way."""
        keyring = Keyring.load(self.key_file)
        anchors = self.anchors.read()  # before the rows
        report = self._verify_in_parallel(anchors, keyring, plan or ParallelPlan.auto(), progress)
        if report is None:
            with self._snapshot() as snapshot:
                report = verify_chain(
                    snapshot.chunks,
                    anchors,
                    keyring=keyring,
                    digest_at=snapshot.digest_at,
                    total=snapshot.total,
                    progress=progress,
                )
        if report.ok:
            report = check_not_replaced(report, self.key_file.parent, self.location, self.ledger_id)
        return report

    # -- closing --------------------------------------------------------------------------
    def close(self) -> None:
        """Sign what this process appended (a final checkpoint), stop the checkpoint timer and
        close the connections. Further appends raise ``LedgerError``."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            started = self._started
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
