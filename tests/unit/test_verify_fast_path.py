"""The fast paths of ``verify``, in one process: each MAC checked inline from precomputed HMAC
states (``ChainWalk.rows``), and ranges checked apart and joined in order (``check_range`` and
``RangeJoin``, what the parallel verify's workers and caller do; the worker function runs
here in-process). Each is held to the one pass that checks every MAC through
``MacRule.check``: the same report, the same first bad record, the same reason.

What the digest and the MAC cover: the exact stored bytes of the body (the fixed-width prefix
and the canonical JSON). A record whose JSON is re-encoded (keys reordered, spaces added) says
the same thing but is a different body: it fails, as an edit.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from faceledger.audit import Ledger, VerifyReport
from faceledger.audit.chain import PREFIX_LEN, body_payload
from faceledger.audit.keyring import Keyring, stage_key
from faceledger.audit.parallel import ParallelPlan
from faceledger.audit.range_worker import RangeTask, check_sqlite_range
from faceledger.audit.ranges import RangeJoin
from faceledger.audit.verify import MacRule
from helpers.ledger import event, raw

SEQUENTIAL = ParallelPlan.one_pass()


def _ledger(tmp_path: Path, count: int = 120, *, rotate_at: int | None = None) -> Ledger:
    """A closed ledger of ``count`` events (checkpoints every 25 records; the key rotated
    after event ``rotate_at``), reopened for verification."""
    ledger = Ledger(
        tmp_path / "data" / "ledger.sqlite3",
        key_file=tmp_path / "keys" / "ledger.key",
        checkpoint_every=25,
    )
    for n in range(count):
        ledger.append(event(n))
        if n == rotate_at:
            ledger.rotate_key("admin")
    ledger.close()
    return Ledger(ledger.path, key_file=ledger.key_file)


def _fields(report: VerifyReport) -> dict[str, Any]:
    fields = report.to_dict()
    del fields["seconds"]
    return fields


def _one_pass_through_mac_rule(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> VerifyReport:
    """The report of the one pass with the inline MAC check off: every MAC through
    ``MacRule.check`` (as before the fast path)."""
    with monkeypatch.context() as patched:
        patched.setattr(MacRule, "fast_states", lambda self: (None, None, None))
        return ledger.verify(plan=SEQUENTIAL)


def _body(ledger: Ledger, seq: int) -> bytes:
    (body,) = raw(ledger).execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()
    return bytes(body)


def _mac(ledger: Ledger, seq: int) -> bytes:
    (mac,) = raw(ledger).execute("SELECT mac FROM records WHERE seq = ?", (seq,)).fetchone()
    return bytes(mac)


# -- the inline MAC check -------------------------------------------------------------------
MAC_TAMPERS = {
    "hmac-bytes-flipped": lambda mac, other: mac[:4] + bytes(b ^ 1 for b in mac[4:]),
    "mac-of-another-record": lambda mac, other: other,
    "mac-cut-short": lambda mac, other: mac[:-1],
    "mac-one-byte-longer": lambda mac, other: mac + b"\x00",
    "mac-stripped": lambda mac, other: None,
    "mac-as-text": lambda mac, other: mac.hex(),
    "unknown-key-id": lambda mac, other: b"\xde\xad\xbe\xef" + mac[4:],
}


@pytest.mark.parametrize("tamper", sorted(MAC_TAMPERS))
def test_a_bad_mac_with_a_good_digest_is_named_as_the_mac_rule_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    ledger = _ledger(tmp_path, 60)
    forged = MAC_TAMPERS[tamper](_mac(ledger, 37), _mac(ledger, 38))
    raw(ledger).execute("UPDATE records SET mac = ? WHERE seq = 37", (forged,))
    report = ledger.verify(plan=SEQUENTIAL)
    assert not report.ok and report.first_bad_seq == 37
    assert "MAC" in (report.reason or "")
    assert _fields(report) == _fields(_one_pass_through_mac_rule(ledger, monkeypatch))


def test_a_mac_under_the_retired_key_after_a_rotation_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _ledger(tmp_path, 60, rotate_at=20)
    rotation = next(e.seq for e in ledger.entries(include_checkpoints=True) if e.kind == "rotation")
    old_key_mac = _mac(ledger, rotation - 1)  # MAC'd with the key the rotation retired
    later = rotation + 5
    keyring = Keyring.load(ledger.key_file)
    old = keyring.signer(old_key_mac[:4])
    assert old is not None
    raw(ledger).execute(
        "UPDATE records SET mac = ? WHERE seq = ?", (old.mac(_body(ledger, later)), later)
    )
    report = ledger.verify(plan=SEQUENTIAL)
    assert report.first_bad_seq == later and "retired or foreign key" in (report.reason or "")
    assert _fields(report) == _fields(_one_pass_through_mac_rule(ledger, monkeypatch))


def test_an_intact_rotated_ledger_passes_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _ledger(tmp_path, 80, rotate_at=30)
    report = ledger.verify(plan=SEQUENTIAL)
    assert report.ok and report.macs_from == 1 and report.checkpoints >= 3
    assert _fields(report) == _fields(_one_pass_through_mac_rule(ledger, monkeypatch))


@pytest.mark.parametrize("recompute_digest", [False, True], ids=["digest-kept", "digest-redone"])
@pytest.mark.parametrize("encoding", ["keys-reordered", "spaces-added"])
def test_a_re_encoded_but_equal_json_body_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, recompute_digest: bool
) -> None:
    """The digest and the MAC are over the stored bytes, not the meaning of the JSON."""
    ledger = _ledger(tmp_path, 60)
    body = _body(ledger, 41)
    payload = body_payload(body)
    if encoding == "keys-reordered":
        text = json.dumps(dict(reversed(list(payload.items()))), separators=(",", ":"))
    else:
        text = json.dumps(payload, sort_keys=True, separators=(", ", ": "))
    forged = body[:PREFIX_LEN] + text.encode("ascii")
    assert forged != body and body_payload(forged) == payload
    db = raw(ledger)
    db.execute("UPDATE records SET body = ? WHERE seq = 41", (forged,))
    if recompute_digest:
        digest = hashlib.sha256(forged).digest()
        db.execute("UPDATE records SET digest = ? WHERE seq = 41", (digest,))
    report = ledger.verify(plan=SEQUENTIAL)
    assert report.first_bad_seq == 41
    expected = "MAC does not verify" if recompute_digest else "was edited"
    assert expected in (report.reason or "")
    assert _fields(report) == _fields(_one_pass_through_mac_rule(ledger, monkeypatch))


# -- ranges checked apart and joined ----------------------------------------------------------
def _joined(ledger: Ledger, bounds: list[int]) -> VerifyReport | None:
    """Check ``[1, b0), [b0, b1), … [bn, last]`` one by one with the worker's function and join
    them as the parallel verify does."""
    anchors = ledger.anchors.read()
    keyring = Keyring.load(ledger.key_file)
    tip = anchors.tip
    join = RangeJoin(anchors, MacRule(keyring, tip.macs_from if tip else None, ledger.key_file))
    assert join.anchors_signed()
    edges = [1, *bounds, ledger.last_seq() + 1]
    for first, end in itertools.pairwise(edges):
        check = check_sqlite_range(RangeTask(str(ledger.path), anchors, first, end - 1))
        if not join.add(check) or check.last_seq != end - 1:
            return None
    return join.report(0.0)


def test_an_intact_ledger_joins_at_every_boundary(tmp_path: Path) -> None:
    """Rotation and checkpoint records included: a boundary before or after either."""
    ledger = _ledger(tmp_path, 70, rotate_at=33)
    one_pass = _fields(ledger.verify(plan=SEQUENTIAL))
    for boundary in range(2, ledger.last_seq() + 1):
        joined = _joined(ledger, [boundary])
        assert joined is not None, boundary
        assert _fields(joined) == one_pass, boundary


@pytest.mark.parametrize("at", ["range-start", "range-middle", "range-end"])
@pytest.mark.parametrize(
    "tamper", ["mac-stripped", "retired-key-mac", "body-edited", "row-deleted"]
)
def test_a_tampered_range_does_not_join(tmp_path: Path, tamper: str, at: str) -> None:
    ledger = _ledger(tmp_path, 70, rotate_at=10)
    seq = {"range-start": 40, "range-middle": 50, "range-end": 59}[at]
    db = raw(ledger)
    if tamper == "mac-stripped":
        db.execute("UPDATE records SET mac = NULL WHERE seq = ?", (seq,))
    elif tamper == "retired-key-mac":
        first_kid = _mac(ledger, 1)[:4]
        old = Keyring.load(ledger.key_file).signer(first_kid)
        assert old is not None and old.kid != _mac(ledger, seq)[:4]
        db.execute("UPDATE records SET mac = ? WHERE seq = ?", (old.mac(_body(ledger, seq)), seq))
    elif tamper == "body-edited":
        forged = _body(ledger, seq).replace(b"officer-", b"officex-")
        db.execute("UPDATE records SET body = ? WHERE seq = ?", (forged, seq))
    else:
        db.execute("DELETE FROM records WHERE seq = ?", (seq,))
    assert not ledger.verify(plan=SEQUENTIAL).ok
    assert _joined(ledger, [40, 60]) is None


@pytest.mark.parametrize("tamper", ["macs-stripped", "retired-key-macs"])
def test_a_range_that_passes_alone_does_not_join_where_the_key_does_not_continue(
    tmp_path: Path, tamper: str
) -> None:
    """Records 40–59 all stripped of their MACs (the tip gone, so nothing says where MACs
    start), or all re-MAC'd with the key retired at record 11: the range alone looks like the
    start of a chain, but not like the continuation of this one."""
    ledger = _ledger(tmp_path, 70, rotate_at=10)
    ledger.tip_file.unlink()
    db = raw(ledger)
    old = Keyring.load(ledger.key_file).signer(_mac(ledger, 1)[:4])
    assert old is not None
    for seq in range(40, 60):
        mac = None if tamper == "macs-stripped" else old.mac(_body(ledger, seq))
        db.execute("UPDATE records SET mac = ? WHERE seq = ?", (mac, seq))
    anchors = ledger.anchors.read()
    alone = check_sqlite_range(RangeTask(str(ledger.path), anchors, 40, 59))
    assert alone.passed and alone.last_seq == 59
    report = ledger.verify(plan=SEQUENTIAL)
    assert report.first_bad_seq == 40
    assert _joined(ledger, [40, 60]) is None


def test_a_range_walked_with_other_keys_does_not_join(tmp_path: Path) -> None:
    """A key file appearing beside the ledger key between the caller's look and a worker's
    (the keys decide which MACs verify): the one pass judges."""
    ledger = _ledger(tmp_path, 40)
    anchors = ledger.anchors.read()
    keyring = Keyring.load(ledger.key_file)
    tip = anchors.tip
    join = RangeJoin(anchors, MacRule(keyring, tip.macs_from if tip else None, ledger.key_file))
    stage_key(ledger.key_file, secrets.token_bytes(32))  # a retired key the caller never saw
    check = check_sqlite_range(RangeTask(str(ledger.path), anchors, 1, ledger.last_seq()))
    assert check.passed and check.key_ids > keyring.ids()
    assert not join.add(check)
