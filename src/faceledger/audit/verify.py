"""Verification of a ledger: the hash chain, the signed checkpoints and the witness.

``verify_chain`` streams ``(seq, body, digest)`` rows in seq order and stops at the first
record that is not what an untouched ledger would hold. The loop is a fast path (slice the
fixed-width prefix, one SHA-256, compare bytes); only when something fails, or at a checkpoint
(one in ``checkpoint_every`` records), does it look closer to say *what* happened:

| tampering                                | first bad seq reported                         |
|------------------------------------------|------------------------------------------------|
| a body byte edited                       | that record                                    |
| a body edited and its digest recomputed  | that record (its successor no longer links)    |
| a row deleted (gap)                      | the missing seq                                |
| rows inserted (later rows renumbered)    | the first inserted seq                         |
| rows swapped / reordered                 | the first displaced seq                        |
| the whole chain recomputed               | the first checkpoint whose signature fails     |
| the tail truncated                       | the first seq after the end (from the witness) |
| the unsigned tail truncated / old copy   | the first seq after the end (from the tip)     |
| a record forged, appended or re-MAC'd    | that record (its per-record MAC fails)         |
| a MAC stripped, or a retired key used    | that record                                    |

Every record since per-record MACs exist carries one (``keyring``); records after the last
signed checkpoint — the *unsigned tail* — are therefore authenticated too, and the tip file
beside the key names the newest record a writer committed, so cutting the tail shows. The
report states the unsigned tail explicitly (``unsigned_tail``).

**Speed.** Per record the loop hashes the body once (SHA-256) and checks its MAC from HMAC
states precomputed for the key it expects (``MacRule.fast_states``); any MAC that shortcut does
not pass goes to ``MacRule.check``, which decides and says why. ``faceledger.audit.ranges``
walks consecutive ranges apart and joins them into this one pass, for several processes
(``faceledger.audit.parallel``); a chain that does not join is judged by the one pass.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from binascii import hexlify
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from faceledger.audit.chain import (
    GENESIS_HEX,
    KIND_AT,
    KIND_CHECKPOINT,
    KIND_CODES,
    KIND_ROTATION,
    PREV_END,
    PREV_START,
    SEQ_END,
    body_kind,
    body_payload,
    body_seq,
)
from faceledger.audit.keyring import KEY_ID_BYTES, MAC_BYTES, Keyring
from faceledger.audit.signing import (
    Tip,
    Witness,
    checkpoint_mac,
    read_tip,
    read_witness,
    tip_path,
    witness_path,
    witnesses_in,
)
from faceledger.domain.errors import LedgerError

# (seq, body, digest, mac) as read; body/digest should be bytes, mac bytes or None.
Row = tuple[int, Any, Any, Any]
Progress = Callable[[int, int], None]  # (records checked, records in the ledger)


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found. ``first_bad_seq`` and ``reason`` are None when ``ok``."""

    ok: bool
    records: int  # records checked (all of them when ok)
    checkpoints: int  # valid signed checkpoints seen
    first_bad_seq: int | None = None
    reason: str | None = None
    last_seq: int = 0
    last_checkpoint_seq: int | None = None
    witness_seq: int | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default=())
    # Records after the last signed checkpoint (each authenticated by its own MAC), and the
    # newest record the tip file names.
    unsigned_tail: int = 0
    macs_from: int | None = None
    tip_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data


class BadRecord(Exception):
    """The first bad record: raised out of the loop with its seq and a human reason."""

    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


class MacRule:
    """Which records must carry a per-record MAC, and with which key.

    Records from ``macs_from`` on must carry a valid MAC (None: from the first record that
    carries one; earlier records were written before MACs existed). Once a key has MAC'd a
    record, every later record uses the same key until a rotation record names the next.
    """

    def __init__(self, keyring: Keyring, macs_from: int | None, key_file: Path) -> None:
        self.keyring = keyring
        self.macs_from = macs_from
        self.key_file = key_file
        self.expected_kid: bytes | None = None

    def check(self, seq: int, body: bytes, mac: Any) -> str | None:
        """Why record ``seq``'s MAC is wrong (None when it is right or not required)."""
        if mac is None:
            if self.expected_kid is None and (self.macs_from is None or seq < self.macs_from):
                return None
            return f"record {seq} carries no MAC (written without the ledger key, or stripped)"
        if isinstance(mac, memoryview):
            mac = bytes(mac)
        if not isinstance(mac, bytes) or len(mac) != MAC_BYTES:
            return f"record {seq} has a malformed MAC"
        kid = mac[:KEY_ID_BYTES]
        if self.expected_kid is not None and kid != self.expected_kid:
            return (
                f"record {seq} is MAC'd with key {kid.hex()}, but from its predecessor on the "
                f"ledger's key is {self.expected_kid.hex()} (a retired or foreign key)"
            )
        signer = self.keyring.signer(kid)
        if signer is None and kid == self.expected_kid:
            # the key a rotation record named: another process may have just made it
            self.keyring = Keyring.load(self.key_file)
            signer = self.keyring.signer(kid)
        if signer is None:
            if not self.keyring:
                raise LedgerError(
                    f"cannot check the MAC of record {seq}: the ledger key {self.key_file} "
                    "does not exist (point FACELEDGER_LEDGER_KEY_FILE at the key that signed "
                    "this ledger, with its retired keys beside it)"
                )
            return (
                f"record {seq} is MAC'd with key {kid.hex()}, which is neither the ledger key "
                "nor a retired one beside it (forged, or a key file is missing)"
            )
        if not hmac.compare_digest(signer.mac(body), mac):
            return (
                f"record {seq}'s MAC does not verify: it was written or rewritten without the "
                "ledger key"
            )
        self.expected_kid = kid
        if self.macs_from is None:
            self.macs_from = seq
        return None

    def fast_states(self) -> tuple[bytes | None, Any, Any]:
        """``(key id, inner, outer)`` for a loop checking the next records' MACs inline
        (``RecordSigner.record_states``): a record whose MAC starts with that key id and
        verifies under those states passes exactly as ``check`` would pass it. Key id None
        when no such shortcut holds yet (no key expected, or MACs not yet required): every
        record then goes through ``check``."""
        kid = self.expected_kid
        signer = self.keyring.signer(kid) if kid is not None else None
        if signer is None or self.macs_from is None:
            return None, None, None
        inner, outer = signer.record_states()
        return kid, inner, outer

    def rotated(self, seq: int, body: bytes) -> None:
        """After rotation record ``seq``: later records use the key it names."""
        try:
            new = bytes.fromhex(str(body_payload(body)["new_key_id"]))
        except (ValueError, KeyError, TypeError):
            raise BadRecord(seq, f"key rotation record {seq} is malformed") from None
        if len(new) != KEY_ID_BYTES:
            raise BadRecord(seq, f"key rotation record {seq} names a malformed key id")
        self.expected_kid = new


def _diagnose(
    seq: int,
    body: Any,
    digest: Any,
    expected: int,
    prev_hex: bytes,
    digest_at: Callable[[int], bytes | None],
) -> BadRecord:
    """Why row ``seq`` failed the fast path (``expected``: the seq it should have had)."""
    if seq != expected:
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}–{seq - 1}"
            return BadRecord(expected, f"record {missing} is missing (deleted); the next is {seq}")
        return BadRecord(seq, f"record {seq} is out of order (expected {expected})")
    if isinstance(body, str):  # rewritten through SQL text functions: judge its content
        body = body.encode("utf-8", "surrogateescape")
    if not isinstance(body, bytes) or not isinstance(digest, bytes):
        return BadRecord(
            seq, f"record {seq} is malformed (its body or digest is not a byte string)"
        )
    named = body_seq(body)
    if named is None:
        return BadRecord(seq, f"record {seq} is malformed (its body does not start with its seq)")
    if named != seq:
        if named < seq:
            before = GENESIS_HEX if named == 1 else hexlify(digest_at(named - 1) or b"")
            if body[PREV_START:PREV_END] == before:
                count = seq - named
                return BadRecord(
                    named,
                    f"record {named} is now stored at seq {seq}: {count} record(s) were "
                    f"inserted at seq {named}",
                )
        return BadRecord(
            seq,
            f"record {seq} holds the body of record {named} (records were reordered, or "
            "deleted and renumbered)",
        )
    if hashlib.sha256(body).digest() != digest:
        return BadRecord(seq, f"record {seq} was edited: its body does not match its digest")
    if body[PREV_START:PREV_END] != prev_hex:
        if seq == 1:
            return BadRecord(
                1, "record 1 does not start the chain (its previous digest is not zero)"
            )
        return BadRecord(
            seq - 1,
            f"record {seq - 1} was changed: its digest is not the one record {seq} was "
            f"chained to (edited and its digest recomputed, or record {seq} was forged)",
        )
    if body_kind(body) is None:
        return BadRecord(seq, f"record {seq} has an unknown kind marker")
    return BadRecord(seq, f"record {seq} was rewritten (its body is stored as text, not bytes)")


def checkpoint_signed(keyring: Keyring, ledger_id: str, seq: int, digest: str, mac: str) -> bool:
    """Whether some key of ``keyring`` signed checkpoint data ``(seq, digest)`` as ``mac``."""
    return any(
        hmac.compare_digest(checkpoint_mac(s.key, ledger_id, seq, digest), mac)
        for s in keyring.all()
    )


def tip_signed(keyring: Keyring, tip: Tip) -> bool:
    try:
        signer = keyring.signer(bytes.fromhex(tip.key_id))
    except ValueError:
        return False
    return signer is not None and hmac.compare_digest(signer.hmac(tip.message()).hex(), tip.mac)


def _check_checkpoint(
    seq: int, body: bytes, prev_hex: bytes, ledger_id: str, keyring: Keyring, key_file: Path
) -> None:
    """Raise ``BadRecord`` unless checkpoint ``seq`` signs its predecessor with our key."""
    try:
        cp = body_payload(body)
        covers_seq, covers_digest = int(cp["covers_seq"]), str(cp["covers_digest"])
        cp_ledger, mac = str(cp["ledger_id"]), str(cp["hmac"])
        kind = cp["kind"]
    except (ValueError, KeyError, TypeError):
        raise BadRecord(seq, f"checkpoint {seq} is malformed") from None
    if kind != KIND_CHECKPOINT:
        raise BadRecord(seq, f"record {seq} is marked as a checkpoint but its content is not one")
    if cp_ledger != ledger_id:
        raise BadRecord(
            seq,
            f"checkpoint {seq} belongs to ledger {cp_ledger}, not to this ledger {ledger_id} "
            "(records copied from another ledger, or the ledger id was changed)",
        )
    if covers_seq != seq - 1 or covers_digest.encode("ascii") != prev_hex:
        raise BadRecord(
            seq,
            f"checkpoint {seq} signed record {covers_seq} with digest {covers_digest[:16]}…, "
            f"but the chain now holds {prev_hex[:16].decode()}… at seq {seq - 1}: the records "
            "before it were rewritten",
        )
    if not keyring:
        raise LedgerError(
            f"cannot check the signed checkpoint at seq {seq}: the ledger key {key_file} does "
            "not exist (point FACELEDGER_LEDGER_KEY_FILE at the key that signed this ledger)"
        )
    if not checkpoint_signed(keyring, ledger_id, covers_seq, covers_digest, mac):
        raise BadRecord(
            seq,
            f"the signature of checkpoint {seq} does not verify: records up to {seq - 1} were "
            "rewritten and re-chained (or this is not the key that signed the ledger)",
        )


def verify_chain(
    chunks: Iterable[Sequence[Row]],
    anchors: Anchors,
    *,
    keyring: Keyring,
    digest_at: Callable[[int], bytes | None],
    total: int = 0,
    progress: Progress | None = None,
    after: tuple[int, bytes] | None = None,
    rule: MacRule | None = None,
) -> VerifyReport:
    """Check every row of ``chunks`` (seq order), each MAC, and the chain against the witness
    and the tip in ``anchors`` (either may be None: not checked); see the module docstring.
    ``after`` = ``(seq, digest)``: the rows continue a chain whose record ``seq`` (already
    checked) has that digest (a writer checking the tail since it last looked; then ``rule``
    carries the MAC state across calls)."""
    started = time.perf_counter()
    if rule is None:
        tip = anchors.tip
        rule = MacRule(keyring, tip.macs_from if tip is not None else None, anchors.key_file)
    walk = ChainWalk(anchors, rule, digest_at, after)
    try:
        anchors.check_signed(keyring)
        for chunk in chunks:
            walk.rows(chunk)
            if progress is not None:
                progress(walk.expected - 1, max(total, walk.expected - 1))
        anchors.check_end(walk.expected - 1)
    except BadRecord as bad:
        return walk.report(started, bad=bad)
    return walk.report(started)


@dataclass(frozen=True)
class Anchors:
    """The files outside the ledger that pin its chain, beside the ledger key: the witness
    (the last signed checkpoint) and the tip (the newest record a writer committed), as read
    (None: absent, or not to be checked)."""

    ledger_id: str
    key_file: Path
    witness: Witness | None = None
    tip: Tip | None = None

    @property
    def witness_file(self) -> Path:
        return witness_path(self.key_file, self.ledger_id)

    @property
    def tip_file(self) -> Path:
        return tip_path(self.key_file, self.ledger_id)

    def read(self) -> Anchors:
        """These anchors with the witness and the tip read from their files now (the witness
        first: read before the rows, as it only moves forward)."""
        witness = read_witness(self.witness_file)
        return replace(self, witness=witness, tip=read_tip(self.tip_file))

    def check_signed(self, keyring: Keyring) -> None:
        """Both files belong to this ledger and are signed by one of its keys."""
        witness, tip = self.witness, self.tip
        if witness is not None:
            if witness.ledger_id != self.ledger_id:
                raise BadRecord(None, f"the witness {self.witness_file} belongs to another ledger")
            if keyring and not checkpoint_signed(
                keyring, self.ledger_id, witness.covers_seq, witness.covers_digest, witness.hmac
            ):
                raise BadRecord(
                    None, f"the witness {self.witness_file} is not signed by the ledger key"
                )
        if tip is not None:
            if tip.ledger_id != self.ledger_id:
                raise BadRecord(None, f"the tip {self.tip_file} belongs to another ledger")
            if keyring and not tip_signed(keyring, tip):
                raise BadRecord(None, f"the tip {self.tip_file} is not signed by the ledger key")

    def check_end(self, last_seq: int) -> None:
        """The chain reaches the records both files name (nothing was cut off)."""
        witness, tip = self.witness, self.tip
        if witness is not None and last_seq < witness.seq:
            raise BadRecord(
                last_seq + 1,
                f"the ledger ends at record {last_seq}, but the witness {self.witness_file} "
                f"names checkpoint {witness.seq} (signed {_iso(witness.time)}): records from "
                f"{last_seq + 1} on were removed (truncated)",
            )
        if tip is not None and last_seq < tip.seq:
            raise BadRecord(
                last_seq + 1,
                f"the ledger ends at record {last_seq}, but the tip {self.tip_file} says record "
                f"{tip.seq} was committed: records from {last_seq + 1} on were removed (the "
                "unsigned tail truncated, or an older copy of the ledger restored)",
            )

    def witness_mismatch(self, seq: int) -> str:
        return (
            f"record {seq} is not the signed checkpoint that the witness {self.witness_file} "
            "names: the ledger was rewritten up to it"
        )

    def tip_mismatch(self, seq: int) -> str:
        return (
            f"record {seq} is not the record the tip {self.tip_file} names: the ledger was "
            "rewritten or replaced by another copy"
        )

    def warnings(self, last_seq: int, unsigned: int, checkpoints: int, rule: MacRule) -> list[str]:
        """What a passing chain is still exposed to (missing files, a tail without MACs)."""
        found: list[str] = []
        if self.witness is None:
            if checkpoints:
                found.append(
                    f"no witness file {self.witness_file}: a truncated tail would not be "
                    "detected (is this the key that signed the ledger?)"
                )
            elif last_seq and self.tip is None:
                found.append("no signed checkpoint yet: a truncated tail would not be detected")
        if self.tip is None and last_seq and rule.macs_from is not None:
            found.append(
                f"no tip file {self.tip_file}: records cut off after the last checkpoint would "
                "not be detected"
            )
        if unsigned and (rule.macs_from is None or last_seq - unsigned + 1 < rule.macs_from):
            found.append(
                f"unsigned tail: records {last_seq - unsigned + 1}–{last_seq} follow the last "
                "signed checkpoint and were written before per-record MACs: only the hash "
                "chain protects them until the next checkpoint"
            )
        return found


class ChainWalk:
    """One pass along the chain: the seq and previous digest it expects next, the MAC rule,
    and the checkpoints seen so far."""

    def __init__(
        self,
        anchors: Anchors,
        rule: MacRule,
        digest_at: Callable[[int], bytes | None],
        after: tuple[int, bytes] | None,
    ) -> None:
        self.anchors = anchors
        self.rule = rule
        self.digest_at = digest_at
        self.expected, self.prev_hex = 1, GENESIS_HEX
        if after is not None and after[0] > 0:
            self.expected, self.prev_hex = after[0] + 1, hexlify(after[1])
        self.checkpoints = 0
        self.last_cp: int | None = None

    def rows(self, chunk: Sequence[Row]) -> None:
        """Check ``chunk``'s rows: the fast path per row (seq, link, digest, and the MAC under
        the expected key from precomputed HMAC states), then a checkpoint's signature, a
        rotation, and the records the witness and tip name. Any MAC the fast path does not
        pass goes to ``MacRule.check``, which decides and says why. The walk's state is kept
        in locals for speed and written back when the chunk ends."""
        sha256, compare = hashlib.sha256, hmac.compare_digest
        rule, anchors = self.rule, self.anchors
        witness_seq, witness_hex = _named(anchors.witness)
        tip_seq, tip_hex = _named(anchors.tip)
        event_code, cp_code = ord("E"), ord("C")
        rot_code = KIND_CODES[KIND_ROTATION][0]
        kid, inner, outer = rule.fast_states()
        expected, prev_hex, digest = self.expected, self.prev_hex, b""
        try:
            for seq, body, stored, mac in chunk:
                try:
                    bad = (
                        seq != expected
                        or body[PREV_START:PREV_END] != prev_hex
                        or (digest := sha256(body).digest()) != stored
                        or body[:SEQ_END] != b"%020d" % seq
                    )
                except TypeError:  # a body or digest that is not bytes
                    bad = True
                if bad:
                    raise _diagnose(seq, body, stored, expected, prev_hex, self.digest_at)
                if mac.__class__ is bytes and mac[:KEY_ID_BYTES] == kid:
                    keyed = inner.copy()
                    keyed.update(body)
                    outer_state = outer.copy()
                    outer_state.update(keyed.digest())
                    passed = compare(outer_state.digest(), mac[KEY_ID_BYTES:])
                else:
                    passed = False
                if not passed:
                    why = rule.check(seq, body, mac)
                    if why is not None:
                        raise BadRecord(seq, why)
                    kid, inner, outer = rule.fast_states()
                kind = body[KIND_AT]
                if kind != event_code:
                    if kind == cp_code:
                        self._checkpoint(seq, body, prev_hex)
                    elif kind == rot_code:
                        rule.rotated(seq, body)
                        kid, inner, outer = rule.fast_states()
                prev_hex = hexlify(digest)
                if seq == witness_seq and prev_hex != witness_hex:
                    raise BadRecord(seq, anchors.witness_mismatch(seq))
                if seq == tip_seq and prev_hex != tip_hex:
                    raise BadRecord(seq, anchors.tip_mismatch(seq))
                expected += 1
        finally:
            self.expected, self.prev_hex = expected, prev_hex

    def _checkpoint(self, seq: int, body: bytes, prev_hex: bytes) -> None:
        anchors = self.anchors
        _check_checkpoint(
            seq, body, prev_hex, anchors.ledger_id, self.rule.keyring, anchors.key_file
        )
        self.checkpoints += 1
        self.last_cp = seq

    def report(self, started: float, *, bad: BadRecord | None = None) -> VerifyReport:
        """The report of this walk: failed at ``bad``, or passed with its warnings."""
        return walk_report(
            self.anchors, self.rule, self.expected - 1, self.checkpoints, self.last_cp, started, bad
        )


def walk_report(
    anchors: Anchors,
    rule: MacRule,
    last_seq: int,
    checkpoints: int,
    last_cp: int | None,
    started: float,
    bad: BadRecord | None = None,
) -> VerifyReport:
    """The report of a walk that ended at ``last_seq``: failed at ``bad``, or passed with its
    warnings."""
    witness, tip = anchors.witness, anchors.tip
    unsigned = 0 if bad is not None else last_seq - (last_cp or 0)
    warnings = () if bad is not None else anchors.warnings(last_seq, unsigned, checkpoints, rule)
    return VerifyReport(
        ok=bad is None,
        records=last_seq,
        checkpoints=checkpoints,
        first_bad_seq=bad.seq if bad is not None else None,
        reason=bad.reason if bad is not None else None,
        last_seq=last_seq,
        last_checkpoint_seq=last_cp,
        witness_seq=witness.seq if witness is not None else None,
        seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        unsigned_tail=unsigned,
        macs_from=rule.macs_from,
        tip_seq=tip.seq if tip is not None else None,
    )


def _named(anchor: Witness | Tip | None) -> tuple[int, bytes]:
    """``(seq, digest hex)`` of the record a witness or tip names (seq 0: none)."""
    if anchor is None:
        return 0, b""
    return anchor.seq, anchor.digest.encode("ascii", "replace")


def check_not_replaced(
    report: VerifyReport, key_folder: Path, location: str, ledger_id: str
) -> VerifyReport:
    """``report``, or a failed one if a witness in ``key_folder`` says another ledger lived at
    ``location`` (this one was deleted or replaced)."""
    for path, witness in witnesses_in(key_folder):
        if witness.ledger_path == location and witness.ledger_id != ledger_id:
            return replace(
                report,
                ok=False,
                first_bad_seq=None,
                reason=(
                    f"the witness {path} says ledger {witness.ledger_id} with at least "
                    f"{witness.seq} records lived at {location}, but this is ledger "
                    f"{ledger_id}: the ledger was deleted or replaced (if that was "
                    "deliberate, move that witness file away)"
                ),
                unsigned_tail=0,
                macs_from=None,
                tip_seq=None,
            )
    return report


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch_s))
