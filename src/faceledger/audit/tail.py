"""A writer's check of the chain it extends: verify before extending.

On start, ``TailVerifier.start`` checks every record after the witness's signed checkpoint
(all of them when there is none) with their MACs, that the chain still reaches the tip, and
chooses the key to extend it with. Before each commit, ``catch_up`` checks whatever other
processes appended since this writer last looked (and follows a key rotation they made). Both
read the rows after a verified point and run ``verify_chain`` over them (``_verify_after``).
A failed check raises ``TailRefused``; the ledger then refuses every append.
"""

from __future__ import annotations

from dataclasses import replace

from faceledger.audit.keyring import Keyring, RecordSigner
from faceledger.audit.records import LedgerWrite
from faceledger.audit.signing import Tip, Witness
from faceledger.audit.verify import Anchors, MacRule, VerifyReport, tip_signed, verify_chain

# (seq, digest) of the genesis point: nothing verified yet.
_GENESIS = (0, bytes(32))


class TailRefused(Exception):
    """The chain does not verify where this writer would extend it; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TailVerifier:
    """What this writer has verified of the chain (``verified``: ``(seq, digest)``), the MAC
    state there (``rule``) and the key it extends the chain with (``signer``)."""

    def __init__(self, files: Anchors) -> None:
        self.files = files  # where the witness and the tip live
        self.ledger_id, self.key_file = files.ledger_id, files.key_file
        self.witness_file, self.tip_file = files.witness_file, files.tip_file
        self.verified: tuple[int, bytes] = _GENESIS
        self.rule: MacRule | None = None
        self.signer: RecordSigner | None = None
        self.macs_from = 1  # the first record that must carry a MAC

    def start(self, tx: LedgerWrite, keyring: Keyring) -> None:
        """Check every record after the witness's signed checkpoint (all of them when there is
        none) with their MACs, and that the chain still reaches the tip; choose the key."""
        anchors = self.files.read()
        witness, tip = anchors.witness, anchors.tip
        head = tx.head()
        after = self._witnessed(tx, witness)
        if tip is not None and tip.ledger_id == self.ledger_id and not tip_signed(keyring, tip):
            raise TailRefused(f"the tip {self.tip_file} is not signed by the ledger key")
        macs_from = tip.macs_from if tip is not None else None
        rule = MacRule(keyring, macs_from, self.key_file)
        report = self._verify_after(tx, after, rule, tip)
        signer = self._start_signer(rule, keyring, tip)
        self.signer, self.rule = signer, rule
        rule.expected_kid = signer.kid
        if macs_from is None:  # no tip yet: records so far were written before MACs existed
            macs_from = report.macs_from if report.macs_from is not None else head[0] + 1
        self.macs_from = rule.macs_from = macs_from
        self.verified = head

    def catch_up(self, tx: LedgerWrite, head_seq: int, head_digest: bytes) -> None:
        """Verify what other processes appended since this writer last looked, before
        extending it (and before any checkpoint of ours signs it)."""
        seq, digest = self.verified
        if (head_seq, head_digest) == (seq, digest):
            return
        if head_seq < seq:
            raise TailRefused(
                f"the ledger now ends at record {head_seq}, but this process saw record {seq} "
                "(records were removed, or an older copy was put in place)"
            )
        if seq > 0 and tx.digest_at(seq) != digest:
            raise TailRefused(
                f"record {seq} changed after this process verified it (the ledger was rewritten)"
            )
        assert self.rule is not None
        report = self._verify_after(tx, (seq, digest), self.rule, None)
        if report.last_seq != head_seq:
            raise TailRefused(f"records after {report.last_seq} could not be read")
        self._follow_rotation()
        self.verified = (head_seq, head_digest)

    def adopt(self, signer: RecordSigner) -> None:
        """Extend the chain with ``signer`` from now on (after this writer rotated the key)."""
        assert self.rule is not None
        known = [s.key for s in self.rule.keyring.all()]
        self.rule.keyring = Keyring(known, signer.key)
        self.rule.expected_kid = signer.kid
        self.signer = signer

    def _verify_after(
        self, tx: LedgerWrite, after: tuple[int, bytes], rule: MacRule, tip: Tip | None
    ) -> VerifyReport:
        """Verify the rows after ``after`` (already verified), carrying ``rule`` across."""
        report = verify_chain(
            [tx.rows_after(after[0])],
            replace(self.files, tip=tip),  # the witness is checked apart (``_witnessed``)
            keyring=rule.keyring,
            digest_at=tx.digest_at,
            after=after,
            rule=rule,
        )
        if not report.ok:
            raise TailRefused(report.reason or "the chain does not verify")
        return report

    def _witnessed(self, tx: LedgerWrite, witness: Witness | None) -> tuple[int, bytes]:
        """The signed checkpoint the witness names, checked against the stored record."""
        if witness is None or witness.ledger_id != self.ledger_id or witness.seq <= 0:
            return _GENESIS
        stored = tx.digest_at(witness.seq)
        if stored is None or stored.hex() != witness.digest:
            raise TailRefused(
                f"record {witness.seq}, the checkpoint the witness {self.witness_file} "
                "names, is missing or changed"
            )
        return (witness.seq, stored)

    def _start_signer(self, rule: MacRule, keyring: Keyring, tip: Tip | None) -> RecordSigner:
        """The key the newest records are MAC'd with (the tip's, or the current key)."""
        kid = rule.expected_kid or (bytes.fromhex(tip.key_id) if tip is not None else None)
        signer = keyring.signer(kid) if kid is not None else keyring.current
        if signer is None:
            raise TailRefused(
                f"the ledger's records are MAC'd with key {kid.hex() if kid else '?'}, which "
                f"is not the key in {self.key_file} nor a retired key beside it"
            )
        if tip is not None and signer.kid.hex() != tip.key_id:
            raise TailRefused(
                f"the newest records are MAC'd with key {signer.kid.hex()}, but the tip "
                f"{self.tip_file} names key {tip.key_id} (a retired or foreign key was used)"
            )
        return signer

    def _follow_rotation(self) -> None:
        """Pick up the key another process rotated to (its rotation record named it)."""
        assert self.rule is not None and self.signer is not None
        kid = self.rule.expected_kid
        if kid is None or kid == self.signer.kid:
            return
        keyring = Keyring.load(self.key_file)
        signer = keyring.signer(kid)
        if signer is None:
            raise TailRefused(f"the ledger was rotated to key {kid.hex()}, which is unknown")
        self.rule.keyring, self.signer = keyring, signer
