"""One pass of ``verify`` cut into consecutive seq ranges walked apart (by worker processes:
``faceledger.audit.parallel``) and joined in order, with the one pass's verdict.

``check_range`` walks a range exactly as ``verify.verify_chain`` walks its rows, continuing
the chain from the stored digest before it; ``RangeJoin`` accepts a range only where it
continues the chain and the MAC key exactly where the previous one ended, and builds the
passing report. What does not join is for the one pass to judge (it names the first bad
record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from faceledger.audit.chain import GENESIS_HEX
from faceledger.audit.keyring import KEY_ID_BYTES, MAC_BYTES
from faceledger.audit.verify import (
    Anchors,
    BadRecord,
    ChainWalk,
    MacRule,
    Row,
    VerifyReport,
    walk_report,
)


@dataclass(frozen=True)
class RangeCheck:
    """What one walk over consecutive rows found, for joining walks done apart (the parallel
    verify, ``faceledger.audit.parallel``): where it started (the seq it expected first and
    the digest, hex, it continued from) and ended, whether every row passed, the key id the
    first row's MAC carries, the MAC rule's state at the end, the signed checkpoints, and the
    ids of the keys the walk started with."""

    passed: bool
    first_seq: int
    start_hex: bytes
    last_seq: int
    end_hex: bytes
    first_mac_kid: bytes | None
    expected_kid: bytes | None
    macs_from: int | None
    checkpoints: int
    last_checkpoint_seq: int | None
    key_ids: frozenset[bytes]

    @classmethod
    def failed(cls, first_seq: int) -> RangeCheck:
        """A range that could not be checked (say, its predecessor's digest is missing)."""
        return cls(
            False, first_seq, b"", first_seq - 1, b"", None, None, None, 0, None, frozenset()
        )


def check_range(
    chunks: Iterable[Sequence[Row]],
    anchors: Anchors,
    *,
    rule: MacRule,
    digest_at: Callable[[int], bytes | None],
    after: tuple[int, bytes] | None,
) -> RangeCheck:
    """Walk ``chunks`` exactly as ``verify_chain`` walks its rows (continuing the chain at
    ``after``, with ``rule``'s MAC state), without the checks that need the whole chain (the
    anchor files' signatures, where the ledger ends); stops at the first bad row."""
    walk = ChainWalk(anchors, rule, digest_at, after)
    first_seq, start_hex, key_ids = walk.expected, walk.prev_hex, rule.keyring.ids()
    first_mac_kid: bytes | None = None
    passed = True
    try:
        for chunk in chunks:
            if walk.expected == first_seq and chunk:
                mac = chunk[0][3]
                if isinstance(mac, bytes) and len(mac) == MAC_BYTES:
                    first_mac_kid = mac[:KEY_ID_BYTES]
            walk.rows(chunk)
    except BadRecord:
        passed = False
    return RangeCheck(
        passed=passed,
        first_seq=first_seq,
        start_hex=start_hex,
        last_seq=walk.expected - 1,
        end_hex=walk.prev_hex,
        first_mac_kid=first_mac_kid,
        expected_kid=rule.expected_kid,
        macs_from=rule.macs_from,
        checkpoints=walk.checkpoints,
        last_checkpoint_seq=walk.last_cp,
        key_ids=key_ids,
    )


class RangeJoin:
    """Joins ``RangeCheck``s of consecutive ranges, in seq order, into the walk one
    ``verify_chain`` pass would have made, or says it cannot (then only that pass may judge:
    it names the first bad record).

    A range joins when it passed, was walked with the keys the join knows (the key files did
    not change in between), and continues the chain where the last one ended: its first
    seq follows, the digest it continued from is the one the last range computed, and — once
    a MAC was verified (a key is expected) — its first record carries a MAC under that key.
    Until a MAC is verified, the MAC rule's state (no key expected, ``macs_from`` from the
    tip) is the same at every range's start as the walker's; after its first record, a range
    walked with the expected key behaves as the one pass would (``macs_from`` matters only
    while no key is expected). So a chain that joins to the end passes every check the one
    pass makes, and a chain that fails any of them fails to join."""

    def __init__(self, anchors: Anchors, rule: MacRule) -> None:
        self.anchors, self.rule = anchors, rule
        self.key_ids = rule.keyring.ids()
        self.last_seq, self.end_hex = 0, GENESIS_HEX
        self.checkpoints = 0
        self.last_cp: int | None = None

    def anchors_signed(self) -> bool:
        """Whether the witness and the tip belong to this ledger and are signed by its keys
        (what the one pass checks before any row)."""
        try:
            self.anchors.check_signed(self.rule.keyring)
        except BadRecord:
            return False
        return True

    def add(self, check: RangeCheck) -> bool:
        """Join ``check`` (the next range); False if it does not join."""
        rule = self.rule
        if (
            not check.passed
            or check.key_ids != self.key_ids
            or check.first_seq != self.last_seq + 1
            or check.start_hex != self.end_hex
            or check.last_seq < check.first_seq
            or (rule.expected_kid is not None and check.first_mac_kid != rule.expected_kid)
        ):
            return False
        self.last_seq, self.end_hex = check.last_seq, check.end_hex
        rule.expected_kid = check.expected_kid
        if rule.macs_from is None:
            rule.macs_from = check.macs_from
        self.checkpoints += check.checkpoints
        if check.last_checkpoint_seq is not None:
            self.last_cp = check.last_checkpoint_seq
        return True

    def report(self, started: float) -> VerifyReport | None:
        """The passing report of the joined chain, or None if it does not reach the records
        the witness and the tip name (the one pass then says how it fails)."""
        try:
            self.anchors.check_end(self.last_seq)
        except BadRecord:
            return None
        return walk_report(
            self.anchors, self.rule, self.last_seq, self.checkpoints, self.last_cp, started
        )
