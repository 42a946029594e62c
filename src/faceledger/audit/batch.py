"""What one group commit writes: the queued appends (``Batch``) and the rows they become,
linked onto the chain's head (``PendingRows``), with a signed checkpoint when one is due."""

from __future__ import annotations

import threading
from typing import Any

from faceledger.audit.chain import KIND_CHECKPOINT, canonical_json, link
from faceledger.audit.keyring import RecordSigner
from faceledger.audit.records import LedgerEntry
from faceledger.audit.signing import Witness, checkpoint_payload
from faceledger.audit.verify import Row
from faceledger.domain.errors import FaceLedgerError


class Batch:
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

    def checkpoint_due(
        self, unsigned: int, *, every: int, seconds: float, now: float, last_cp_time: float
    ) -> bool:
        """Whether this commit ends with a checkpoint (``unsigned``: records after the last)."""
        return (
            self.force_checkpoint
            or self.rotate_to is not None
            or unsigned >= every
            or (unsigned > 0 and (self.final or now - last_cp_time >= seconds))
        )


class PendingRows:
    """The rows one commit appends after ``(seq, prev)``, each MAC'd by ``signer``."""

    def __init__(self, seq: int, prev: bytes, signer: RecordSigner) -> None:
        self.seq = seq
        self.prev = prev
        self.signer = signer
        self.rows: list[Row] = []
        self.entries: list[LedgerEntry] = []

    def add(self, kind: str, encoded: bytes, when: float, payload: dict[str, Any]) -> None:
        """Link one record of ``kind`` (its canonical JSON ``encoded``) onto the chain."""
        self.seq += 1
        body, self.prev = link(self.seq, self.prev, kind, encoded)
        self.rows.append((self.seq, body, self.prev, self.signer.mac(body)))
        self.entries.append(LedgerEntry(self.seq, when, self.prev.hex(), payload))

    def add_checkpoint(self, ledger_id: str, location: str, now: float) -> Witness:
        """Link a checkpoint signing the newest record; returns the witness naming it."""
        covers = self.prev.hex()
        payload = checkpoint_payload(self.signer.key, ledger_id, self.seq, covers, now)
        self.add(KIND_CHECKPOINT, canonical_json(payload), now, payload)
        return Witness(
            ledger_id=ledger_id,
            seq=self.seq,
            digest=self.prev.hex(),
            covers_seq=self.seq - 1,
            covers_digest=covers,
            hmac=payload["hmac"],
            time=now,
            ledger_path=location,
        )
