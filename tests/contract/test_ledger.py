"""The audit ledger: hash chain, tampering of every kind, signed checkpoints and the witness,
group commit from threads and processes, durability under ``kill -9``, the privacy guard.

Tests of the ledger's contract (``new_ledger``, ``closed``) run on both backends: the SQLite
file and PostgreSQL (``faceledger.audit.postgres``); the processes and ``kill -9`` tests of the
PostgreSQL ledger are in ``test_pg_ledger.py``.

Run as a script, this file is the worker that other processes use (``append`` and ``crash``
modes, see ``_worker``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faceledger.audit import Ledger, LedgerEntry
from faceledger.audit.chain import (
    KIND_CHECKPOINT,
    KIND_EVENT,
    body_kind,
    body_payload,
    canonical_json,
    link,
)
from faceledger.audit.core import ChainLedger
from faceledger.audit.postgres import PostgresLedger
from faceledger.audit.signing import checkpoint_payload, read_witness
from faceledger.config import Settings
from faceledger.domain.errors import LedgerError, LedgerTamperedError
from helpers.ledger import Raw, append_until_told, event, raw
from helpers.processes import python_env

FAKE_KEY = b"k" * 32


def open_ledger(tmp_path: Path, **kwargs: object) -> Ledger:
    return Ledger(
        tmp_path / "data" / "ledger.sqlite3",
        key_file=tmp_path / "keys" / "ledger.key",
        **kwargs,  # type: ignore[arg-type]
    )


Opener = Callable[..., ChainLedger]  # new_ledger(**kwargs): the same ledger each call


@pytest.fixture(params=["sqlite", "postgres"])
def new_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the test's ledger on one backend (keyword arguments as ``Ledger``'s): a file in
    ``tmp_path``, or a fresh PostgreSQL database upgraded to the head revision."""
    key_file = tmp_path / "keys" / "ledger.key"
    if request.param == "sqlite":
        return lambda **kwargs: open_ledger(tmp_path, **kwargs)
    url = request.getfixturevalue("migrated_database")
    return lambda **kwargs: PostgresLedger(url, key_file=key_file, **kwargs)


def reopen(ledger: ChainLedger, **kwargs: Any) -> ChainLedger:
    """Another instance of the same ledger (as another process would open it)."""
    if isinstance(ledger, PostgresLedger):
        return PostgresLedger(ledger.url, key_file=ledger.key_file, **kwargs)
    assert isinstance(ledger, Ledger)
    return Ledger(ledger.path, key_file=ledger.key_file, **kwargs)


def fill(ledger: ChainLedger, count: int, batch: int = 25) -> None:
    for start in range(0, count, batch):
        ledger.append_many(event(n) for n in range(start, min(count, start + batch)))


def checkpoint_seqs(ledger: ChainLedger) -> list[int]:
    return [e.seq for e in ledger.entries(include_checkpoints=True) if e.kind == KIND_CHECKPOINT]


@pytest.fixture
def closed(new_ledger: Opener) -> ChainLedger:
    """A ledger of 300 events with checkpoints every 100 records, closed (so its final
    checkpoint is witnessed), reopened for verification."""
    ledger = new_ledger(checkpoint_every=100)
    fill(ledger, 300)
    ledger.close()
    reopened = new_ledger(checkpoint_every=100)
    assert reopened.verify().ok
    return reopened


# -- the chain ------------------------------------------------------------------------------
def test_records_are_chained_and_round_trip(new_ledger: Opener) -> None:
    ledger = new_ledger()
    first = ledger.append(event(1))
    second = ledger.append(event(2))
    assert (first.seq, second.seq) == (1, 2)
    db = raw(ledger)
    rows = db.execute("SELECT seq, body, digest FROM records ORDER BY seq").fetchall()
    assert rows[0][1][:86] == b"%020d %s " % (1, b"0" * 64)  # genesis link
    assert rows[1][1][21:85] == rows[0][2].hex().encode()  # record 2 holds record 1's digest
    assert all(hashlib.sha256(body).digest() == digest for _, body, digest in rows)
    assert rows[0][2].hex() == first.digest
    stored = list(ledger.entries())
    assert [e.event for e in stored] == [event(1), event(2)]
    assert stored[0].time == pytest.approx(time.time(), abs=60)
    ledger.close()


def test_an_intact_ledger_of_thousands_verifies(new_ledger: Opener) -> None:
    ledger = new_ledger(checkpoint_every=500)
    fill(ledger, 3000, batch=100)
    ledger.close()
    report = new_ledger().verify()
    assert report.ok, report.reason
    assert report.records == report.last_seq >= 3001 and report.checkpoints >= 6
    assert report.witness_seq == report.last_checkpoint_seq == report.last_seq
    assert report.first_bad_seq is None and report.warnings == ()


# -- tampering: each kind is found at the right record ----------------------------------------
def _verify_bad(ledger: ChainLedger) -> tuple[int | None, str]:
    report = ledger.verify()
    assert not report.ok
    return report.first_bad_seq, report.reason or ""


def test_an_edited_body_byte_is_found(closed: ChainLedger) -> None:
    db = raw(closed)
    (body,) = db.execute("SELECT body FROM records WHERE seq = 137").fetchone()
    forged = body.replace(b'"outcome":"ok"', b'"outcome":"no"')
    assert forged != body
    db.execute("UPDATE records SET body = ? WHERE seq = 137", (forged,))
    seq, reason = _verify_bad(closed)
    assert seq == 137 and "edited" in reason


def test_an_edit_with_its_digest_recomputed_is_found(closed: ChainLedger) -> None:
    db = raw(closed)
    (body,) = db.execute("SELECT body FROM records WHERE seq = 137").fetchone()
    forged = body.replace(b"officer-", b"officex-")
    db.execute(
        "UPDATE records SET body = ?, digest = ? WHERE seq = 137",
        (forged, hashlib.sha256(forged).digest()),
    )
    seq, reason = _verify_bad(closed)
    assert seq == 137 and "record 137's MAC does not verify" in reason


def test_a_deleted_middle_row_is_found(closed: ChainLedger) -> None:
    raw(closed).execute("DELETE FROM records WHERE seq = 150")
    seq, reason = _verify_bad(closed)
    assert seq == 150 and "missing" in reason


def test_deleted_first_rows_are_found(closed: ChainLedger) -> None:
    raw(closed).execute("DELETE FROM records WHERE seq <= 3")
    assert _verify_bad(closed)[0] == 1


def test_a_truncated_tail_is_found_through_the_witness(closed: ChainLedger) -> None:
    last = closed.last_seq()
    witness = read_witness(closed.witness_file)
    assert witness is not None and witness.seq == last  # close() signed the tail
    raw(closed).execute("DELETE FROM records WHERE seq > 250")
    seq, reason = _verify_bad(closed)
    assert seq == 251 and "truncated" in reason


def test_a_truncated_tail_is_found_through_the_tip_without_the_witness(
    closed: ChainLedger,
) -> None:
    raw(closed).execute("DELETE FROM records WHERE seq > 250")
    closed.witness_file.unlink()
    seq, reason = _verify_bad(closed)
    assert seq == 251 and "tip" in reason


def test_a_truncated_tail_is_not_found_without_the_witness_and_the_tip(
    closed: ChainLedger,
) -> None:
    """The witness and the tip are what make truncation visible (hence kept outside the data
    dir)."""
    raw(closed).execute("DELETE FROM records WHERE seq > 250")
    closed.witness_file.unlink()
    closed.tip_file.unlink()
    report = closed.verify()
    assert report.ok and any("witness" in w for w in report.warnings)
    assert any("tip" in w for w in report.warnings)


def test_an_inserted_forged_row_is_found(closed: ChainLedger) -> None:
    db = raw(closed)
    (prev,) = db.execute("SELECT digest FROM records WHERE seq = 119").fetchone()
    # make room at seq 120 (later rows move up by one), then insert a well-chained forgery
    db.execute("UPDATE records SET seq = -seq WHERE seq >= 120")
    db.execute("UPDATE records SET seq = 1 - seq WHERE seq < 0")
    payload = {"kind": KIND_EVENT, "time": time.time(), **event(999, principal="ghost").to_dict()}
    body, digest = link(120, prev, KIND_EVENT, canonical_json(payload))
    db.execute("INSERT INTO records VALUES (?, ?, ?, NULL)", (120, body, digest))
    seq, reason = _verify_bad(closed)
    assert seq == 120 and "carries no MAC" in reason


def test_swapped_bodies_are_found(closed: ChainLedger) -> None:
    db = raw(closed)
    (a,) = db.execute("SELECT body FROM records WHERE seq = 130").fetchone()
    (b,) = db.execute("SELECT body FROM records WHERE seq = 160").fetchone()
    db.execute("UPDATE records SET body = ? WHERE seq = 130", (b,))
    db.execute("UPDATE records SET body = ? WHERE seq = 160", (a,))
    seq, reason = _verify_bad(closed)
    assert seq == 130 and "body of record 160" in reason


def test_swapped_rows_are_found(closed: ChainLedger) -> None:
    db = raw(closed)
    db.execute("UPDATE records SET seq = -1 WHERE seq = 41")
    db.execute("UPDATE records SET seq = 41 WHERE seq = 42")
    db.execute("UPDATE records SET seq = 42 WHERE seq = -1")
    assert _verify_bad(closed)[0] == 41


def _rewrite_chain(ledger: ChainLedger, *, key: bytes, keep_checkpoints: bool) -> None:
    """Recompute the whole chain, changing record 50's principal: checkpoints are re-signed
    with ``key`` (or dropped, with the records renumbered)."""
    db = raw(ledger)
    rows = db.execute("SELECT seq, body FROM records ORDER BY seq").fetchall()
    db.execute("BEGIN")
    db.execute("DELETE FROM records")
    seq, prev = 0, bytes(32)
    for old_seq, body in rows:
        kind = body_kind(body)
        payload = body_payload(body)
        if kind == KIND_CHECKPOINT:
            if not keep_checkpoints:
                continue
            payload = checkpoint_payload(key, ledger.ledger_id, seq, prev.hex(), payload["time"])
        elif old_seq == 50:
            payload["principal"] = "someone-else"
        seq += 1
        new_body, prev = link(seq, prev, kind or KIND_EVENT, canonical_json(payload))
        db.execute("INSERT INTO records VALUES (?, ?, ?, NULL)", (seq, new_body, prev))
    db.execute("COMMIT")


def test_a_recomputed_chain_fails_the_checkpoint_signature(closed: ChainLedger) -> None:
    _rewrite_chain(closed, key=FAKE_KEY, keep_checkpoints=True)
    seq, reason = _verify_bad(closed)
    assert seq == 1 and "carries no MAC" in reason  # the per-record MACs fail first
    closed.tip_file.unlink()  # without the tip (which says MACs start at 1)…
    first_checkpoint = checkpoint_seqs(closed)[0]
    seq, reason = _verify_bad(closed)  # …the checkpoint signature still fails
    assert seq == first_checkpoint and "signature" in reason


def test_a_recomputed_chain_without_checkpoints_fails_the_witness(closed: ChainLedger) -> None:
    witness = read_witness(closed.witness_file)
    assert witness is not None
    _rewrite_chain(closed, key=FAKE_KEY, keep_checkpoints=False)
    assert _verify_bad(closed)[0] == 1  # no MACs
    closed.tip_file.unlink()  # without the tip, the witness still shows it
    seq, reason = _verify_bad(closed)
    assert seq is not None and seq <= witness.seq
    assert "witness" in reason or "truncated" in reason


def test_a_checkpoint_from_another_ledger_is_found(closed: ChainLedger) -> None:
    raw(closed).execute(  # another id: change the first hex digit (to "f", or "e" if it is "f")
        "UPDATE meta SET ledger_id = "
        "(CASE WHEN substr(ledger_id, 1, 1) = 'f' THEN 'e' ELSE 'f' END) || substr(ledger_id, 2)"
    )
    reopened = reopen(closed)
    seq, reason = _verify_bad(reopened)
    assert seq == checkpoint_seqs(closed)[0] and "another ledger" in reason


def test_a_replaced_ledger_is_found(closed: ChainLedger, new_ledger: Opener) -> None:
    if isinstance(closed, Ledger):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{closed.path}{suffix}").unlink(missing_ok=True)
    else:  # the database's ledger emptied and started afresh
        db = raw(closed)
        db.execute("DELETE FROM records")
        db.execute("DELETE FROM meta")
        db.execute("ALTER TABLE records ENABLE TRIGGER USER")
    fresh = new_ledger()
    assert fresh.ledger_id != closed.ledger_id
    fresh.append(event(1))
    report = fresh.verify()
    assert not report.ok and "deleted or replaced" in (report.reason or "")
    fresh.close()


def test_the_ledger_refuses_updates_and_deletes_through_sql(closed: ChainLedger) -> None:
    if isinstance(closed, PostgresLedger):
        import psycopg

        pg = psycopg.connect(closed.url, autocommit=True)
        for sql in (
            "DELETE FROM ledger.records WHERE seq = 5",
            "UPDATE ledger.records SET body = '\\x00' WHERE seq = 5",
            "TRUNCATE ledger.records",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                pg.execute(sql)
        pg.close()
    else:
        assert isinstance(closed, Ledger)
        db = sqlite3.connect(closed.path, isolation_level=None)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM records WHERE seq = 5")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE records SET body = x'00' WHERE seq = 5")
    assert closed.verify().ok


# -- checkpoints ----------------------------------------------------------------------------
def test_checkpoints_follow_the_count_the_clock_and_close(new_ledger: Opener) -> None:
    ledger = new_ledger(checkpoint_every=10, checkpoint_seconds=0.3)
    for n in range(25):
        ledger.append(event(n))
    by_count = checkpoint_seqs(ledger)
    assert len(by_count) == 2  # at seq 11 (covering 1–10) and 22 (the checkpoint counts)
    ledger.append(event(99))
    deadline = time.monotonic() + 5
    while len(checkpoint_seqs(ledger)) == 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(checkpoint_seqs(ledger)) == 3  # signed by the clock, without another append
    ledger.append(event(100))
    ledger.close()
    final = checkpoint_seqs(ledger)
    assert len(final) == 4 and final[-1] == ledger.last_seq()
    witness = read_witness(ledger.witness_file)
    assert witness is not None and witness.seq == final[-1]
    assert new_ledger().verify().ok


def test_forced_checkpoint_and_read_only_use_write_nothing_else(new_ledger: Opener) -> None:
    ledger = new_ledger()
    ledger.append(event(1))
    entry = ledger.checkpoint()
    assert entry.kind == KIND_CHECKPOINT and entry.payload["covers_seq"] == 1
    assert entry.seq == 2
    ledger.close()  # the head is already signed: no second checkpoint
    reader = new_ledger()
    assert [e.seq for e in reader.entries()] == [1] and reader.verify().ok
    reader.close()  # a reader that appended nothing writes nothing
    assert new_ledger().last_seq() == 2


# -- files, key and settings ----------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_key_is_created_private_outside_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACELEDGER_LEDGER_KEY_FILE", raising=False)  # set by conftest
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ledger = Ledger.from_settings(Settings(data_dir=tmp_path / "data"))
    assert ledger.path == tmp_path / "data" / "ledger.sqlite3"
    assert ledger.key_file == tmp_path / "config" / "faceledger" / "ledger.key"
    ledger.append(event(1))
    assert len(ledger.key_file.read_bytes()) == 32
    assert _mode(ledger.key_file) == 0o600 and _mode(ledger.key_file.parent) == 0o700
    assert _mode(ledger.path) == 0o600
    ledger.close()


def test_verify_without_the_signing_key_says_so(closed: ChainLedger) -> None:
    closed.key_file.unlink()
    with pytest.raises(LedgerError, match="does not exist"):
        closed.verify()


def test_a_key_file_inside_the_data_dir_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ledger_key_file=tmp_path / "data" / "k.key")
    with pytest.raises(LedgerError, match="inside the data directory"):
        Ledger.from_settings(settings)
    with pytest.raises(LedgerError, match="inside the data directory"):
        Ledger(tmp_path / "d" / "ledger.sqlite3", key_file=tmp_path / "d" / "keys" / "k")
    assert not (tmp_path / "data" / "k.key").exists()


# -- the privacy guard ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "result",
    [
        {"image": b"\xff\xd8\xff\xe0 jpeg"},
        {"nested": [{"crop": bytearray(b"pixels")}]},
        {"embedding": [0.01 * i for i in range(128)]},
    ],
    ids=["bytes", "nested-bytearray", "float-list"],
)
def test_the_guard_refuses_image_bytes_and_embeddings(new_ledger: Opener, result: dict) -> None:
    ledger = new_ledger()
    with pytest.raises(LedgerError, match="never holds image bytes or embeddings"):
        ledger.append(event(1, result=result))
    assert ledger.last_seq() == 0
    ledger.close()


def test_over_long_text_is_cut_and_hashed_never_refused(new_ledger: Opener) -> None:
    """A refused call with a hostile purpose or a huge collection id is still recorded: each
    over-long string keeps its start, and the record holds its length and SHA-256."""
    ledger = new_ledger()
    purpose, blob = "p" * 5000, "QUJD" * 2000
    entry = ledger.append(
        event(1, purpose=purpose, collection_id="c" * 5000, result={"embedding": blob})
    )
    stored = next(iter(ledger.entries()))
    assert stored.seq == entry.seq
    payload = stored.payload
    assert len(payload["purpose"]) <= 257 and payload["purpose"].startswith("ppp")
    notes = payload["result"]["bounded"]
    assert notes["purpose"] == {
        "chars": 5000,
        "sha256": hashlib.sha256(purpose.encode()).hexdigest(),
    }
    assert notes["collection_id"]["chars"] == 5000
    assert notes["result.embedding"]["sha256"] == hashlib.sha256(blob.encode()).hexdigest()
    assert len(payload["result"]["embedding"]) <= 257
    ledger.close()


def test_the_guard_refuses_numpy_and_bad_digests(new_ledger: Opener) -> None:
    np = pytest.importorskip("numpy")
    ledger = new_ledger()
    for result in ({"embedding": np.zeros(128, np.float32)}, {"score": np.float32(0.5)}):
        with pytest.raises(LedgerError, match="array"):
            ledger.append(event(1, result=result))
    with pytest.raises(LedgerError, match="SHA-256"):
        ledger.append(event(1, probe_sha256=("not-a-digest",)))
    with pytest.raises(LedgerError, match="cannot be recorded"):
        ledger.append(event(1, result={"odd": {1, 2}}))
    # what searches legitimately record passes: many matches, short score lists, counts
    many = {"FaceMatches": [{"FaceId": f"f{i}", "Similarity": 90.0} for i in range(500)]}
    ledger.append(event(1, result={**many, "scores": [0.5] * 64, "count": 3}))
    assert ledger.last_seq() == 1
    ledger.close()


# -- reading --------------------------------------------------------------------------------
def test_entries_filter_and_order(new_ledger: Opener) -> None:
    ledger = new_ledger(checkpoint_every=7)
    fill(ledger, 20, batch=4)
    ledger.append(event(20, outcome="AccessDeniedException", operation="IndexFaces"))
    everything = list(ledger.entries())
    assert len(everything) == 21 and all(e.kind == KIND_EVENT for e in everything)
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    assert len(checkpoint_seqs(ledger)) >= 2
    officer = [e.event for e in ledger.entries(principal="officer-3")]
    assert officer and all(e is not None and e.principal == "officer-3" for e in officer)
    assert len(officer) == sum(1 for n in range(21) if n % 7 == 3)
    in_col = list(ledger.entries(collection_id="col-1", principal="officer-1"))
    assert {e.payload["request_id"] for e in in_col} == {
        f"req-{n}" for n in range(21) if n % 2 == 1 and n % 7 == 1
    }
    denied = list(ledger.entries(outcome="AccessDeniedException"))
    assert [e.payload["operation"] for e in denied] == ["IndexFaces"]
    assert list(ledger.entries(operation="IndexFaces")) == denied
    newest = list(ledger.entries(newest_first=True, limit=3))
    assert [e.seq for e in newest] == [e.seq for e in everything[::-1][:3]]
    middle = everything[10].time
    later = list(ledger.entries(since=middle))
    assert later and all(e.time >= middle for e in later)
    assert all(e.time < middle for e in ledger.entries(until=middle))
    assert len(later) + len(list(ledger.entries(until=middle))) == 21
    ledger.close()


# -- failures ---------------------------------------------------------------------------------
def test_a_failed_commit_fails_every_waiting_caller_then_recovers(new_ledger: Opener) -> None:
    ledger = new_ledger()
    ledger.append(event(0))
    db = raw(ledger)
    if db.pg:
        db.execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$"
        )
        db.execute("CREATE TRIGGER fail BEFORE INSERT ON records EXECUTE FUNCTION fail()")
    else:
        db.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON records "
            "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
        )
    errors: list[Exception] = []
    barrier = threading.Barrier(6)

    def append(n: int) -> None:
        barrier.wait()
        try:
            ledger.append(event(n))
        except LedgerError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 6 and all("disk full" in str(e) for e in errors)
    db.execute("DROP TRIGGER fail ON records" if db.pg else "DROP TRIGGER fail")
    entry = ledger.append(event(7))
    assert entry.seq == 2
    ledger.close()
    assert new_ledger().verify().ok


def test_a_rewrite_of_our_last_record_stops_further_appends(new_ledger: Opener) -> None:
    """Recomputing the tail's digests keeps the chain linked; the next checkpoint must not
    then vouch for it, so the process that wrote the record refuses to go on."""
    ledger = new_ledger()
    last = ledger.append_many([event(0), event(1)])[-1]
    db = raw(ledger)
    (body,) = db.execute("SELECT body FROM records WHERE seq = ?", (last.seq,)).fetchone()
    forged = body.replace(b"officer-1", b"officer-9")
    db.execute(
        "UPDATE records SET body = ?, digest = ? WHERE seq = ?",
        (forged, hashlib.sha256(forged).digest(), last.seq),
    )
    with pytest.raises(LedgerError, match=f"record {last.seq} changed after this process"):
        ledger.append(event(2))
    assert ledger.last_seq() == last.seq
    with contextlib.suppress(LedgerError):  # its closing checkpoint is refused the same way
        ledger.close()


def test_appends_after_close_are_refused(new_ledger: Opener) -> None:
    ledger = new_ledger()
    ledger.append(event(0))
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.append(event(1))


# -- concurrency and durability --------------------------------------------------------------
def _spawn(mode: str, tmp_path: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, mode, str(tmp_path), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),  # run as a script, this file imports helpers
    )


def test_threads_and_processes_form_one_chain(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path, checkpoint_every=200)
    ledger.append(event(0))  # create the file and key before the processes race for them
    workers = [_spawn("append", tmp_path, 300) for _ in range(2)]
    for worker in workers:  # both processes are up; all start appending together
        assert worker.stdout is not None and worker.stdout.readline().strip() == "READY"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("GO\n")
        worker.stdin.flush()
    returned: list[LedgerEntry] = []
    lock = threading.Lock()

    def append(k: int) -> None:
        for n in range(250):
            entry = ledger.append(event(k * 1000 + n))
            with lock:
                returned.append(entry)

    threads = [threading.Thread(target=append, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acks = {e.seq: e.digest for e in returned}
    theirs: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        lines = [line.split() for line in out.splitlines()]
        assert len(lines) == 300
        for seq, digest in lines:
            assert int(seq) not in acks  # no seq handed out twice
            acks[int(seq)] = digest
            theirs.append(int(seq))
    ledger.close()
    assert len(acks) == 2000 + 600
    ours = [e.seq for e in returned]
    assert min(theirs) < max(ours) and min(ours) < max(theirs)  # they did interleave
    stored = {e.seq: e.digest for e in open_ledger(tmp_path).entries()}
    assert len(stored) == 1 + 2000 + 600
    assert all(stored[seq] == digest for seq, digest in acks.items())
    report = open_ledger(tmp_path).verify()
    assert report.ok, report.reason
    assert report.checkpoints >= 3


def test_acknowledged_appends_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(7)
    acknowledged: list[int] = []
    for _ in range(3):
        worker = _spawn("crash", tmp_path, 0)
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(worker.pid, signal.SIGKILL)
        out, _ = worker.communicate(timeout=30)
        acknowledged += [int(line) for line in out.split()]
    assert len(acknowledged) > 20
    ledger = open_ledger(tmp_path)
    stored = {e.seq for e in ledger.entries()}
    assert set(acknowledged) <= stored
    report = ledger.verify()
    assert report.ok, report.reason
    # the chain carries on after the crashes
    assert ledger.append(event(1)).seq == ledger.last_seq()
    ledger.close()
    assert open_ledger(tmp_path).verify().ok


# -- the worker processes ---------------------------------------------------------------------
def _worker(mode: str, folder: Path, count: int) -> None:
    """The worker process of this file's process tests (see ``append_until_told``)."""
    append_until_told(open_ledger(folder, checkpoint_every=50), mode, count)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))


# -- the tamper suite: every kind, with an unsigned tail, across a restart and a checkpoint ---
def _with_unsigned_tail(new_ledger: Opener) -> tuple[ChainLedger, list[tuple[Any, ...]]]:
    """300 events with checkpoints every 100 (at 101, 202, 303; closed, witnessed), then 40
    more by a writer that dies before it signs them (no close): records 304–343 are the
    unsigned tail. Also returns the rows as they were before the tail (an "old copy")."""
    first = new_ledger(checkpoint_every=100)
    fill(first, 300)
    first.close()
    old_copy = raw(first).execute("SELECT seq, body, digest, mac FROM records").fetchall()
    writer = new_ledger(checkpoint_every=10**6, checkpoint_seconds=3600)
    fill(writer, 40, batch=5)
    writer._close_storage()  # "killed": its tail stays unsigned
    reader = new_ledger()
    report = reader.verify()
    assert report.ok and report.unsigned_tail == 40 and report.last_seq == 343
    return reader, old_copy


def _relink_from(db: Raw, start: int, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit record ``start``'s content and recompute every digest from it on (the chain links
    again; without the key the MACs cannot follow)."""
    rows = db.execute("SELECT seq, body FROM records WHERE seq >= ? ORDER BY seq", (start,))
    rows = rows.fetchall()
    (prev,) = db.execute("SELECT digest FROM records WHERE seq = ?", (start - 1,)).fetchone()
    for seq, body in rows:
        payload = body_payload(body)
        if seq == start:
            edit(payload)
        new_body, prev = link(seq, prev, body_kind(body) or KIND_EVENT, canonical_json(payload))
        db.execute("UPDATE records SET body = ?, digest = ? WHERE seq = ?", (new_body, prev, seq))


def _forged_row(db: Raw, seq: int, mac: bytes | None) -> tuple[Any, ...]:
    (prev,) = db.execute("SELECT digest FROM records WHERE seq = ?", (seq - 1,)).fetchone()
    payload = {"kind": KIND_EVENT, "time": time.time(), **event(999, principal="ghost").to_dict()}
    body, digest = link(seq, prev, KIND_EVENT, canonical_json(payload))
    return (seq, body, digest, mac)


def _fake_mac(body: bytes) -> bytes:
    from faceledger.audit.keyring import RecordSigner

    return RecordSigner(FAKE_KEY).mac(body)


def _tamper_restore_old_copy(db: Raw, old: list[tuple[Any, ...]]) -> None:
    db.execute("DELETE FROM records")
    for row in old:
        db.execute("INSERT INTO records VALUES (?, ?, ?, ?)", tuple(row))


def _tamper_edit(db: Raw, seq: int) -> None:
    (body,) = db.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()
    db.execute(
        "UPDATE records SET body = ? WHERE seq = ?",
        (bytes(body).replace(b"officer", b"Officer"), seq),
    )


def _tamper_append(db: Raw, *, fake_key: bool) -> None:
    seq, body, digest, _ = _forged_row(db, 344, None)
    db.execute(
        "INSERT INTO records VALUES (?, ?, ?, ?)",
        (seq, body, digest, _fake_mac(body) if fake_key else None),
    )


def _tamper_insert(db: Raw) -> None:
    db.execute("UPDATE records SET seq = -seq WHERE seq >= 320")
    db.execute("UPDATE records SET seq = 1 - seq WHERE seq < 0")
    seq, body, digest, _ = _forged_row(db, 320, None)
    db.execute("INSERT INTO records VALUES (?, ?, ?, ?)", (seq, body, digest, _fake_mac(body)))


def _tamper_swap(db: Raw) -> None:
    db.execute("UPDATE records SET seq = -1 WHERE seq = 310")
    db.execute("UPDATE records SET seq = 310 WHERE seq = 311")
    db.execute("UPDATE records SET seq = 311 WHERE seq = -1")


def _tamper_rewrite_all(db: Raw, ledger: ChainLedger) -> None:
    """Recompute the whole chain with a key of the attacker's: MACs and checkpoints."""
    from faceledger.audit.keyring import RecordSigner

    signer = RecordSigner(FAKE_KEY)
    rows = db.execute("SELECT seq, body FROM records ORDER BY seq").fetchall()
    db.execute("DELETE FROM records")
    prev = bytes(32)
    for seq, body in rows:
        kind = body_kind(body) or KIND_EVENT
        payload = body_payload(body)
        if kind == KIND_CHECKPOINT:
            payload = checkpoint_payload(FAKE_KEY, ledger.ledger_id, seq - 1, prev.hex(), 0.0)
        elif seq == 50:
            payload["principal"] = "someone-else"
        new_body, prev = link(seq, prev, kind, canonical_json(payload))
        db.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?)", (seq, new_body, prev, signer.mac(new_body))
        )


TAMPERS: dict[str, Callable[[Raw, ChainLedger, list[tuple[Any, ...]]], None]] = {
    "edit-signed": lambda db, _, __: (
        db.execute(
            "UPDATE records SET body = CAST(? AS BLOB) || substr(body, 2) WHERE seq = 150", (b"1",)
        )
        if not db.pg
        else db.execute(
            "UPDATE records SET body = overlay(body placing '\\x31' from 1) WHERE seq = 150"
        )
    ),
    "edit-unsigned-tail": lambda db, _, __: _relink_from(
        db, 330, lambda p: p.update(outcome="AccessDeniedException")
    ),
    "rehash-reattribute-tail": lambda db, _, __: _relink_from(
        db, 305, lambda p: p.update(principal="officer-x")
    ),
    "delete-middle": lambda db, _, __: db.execute("DELETE FROM records WHERE seq = 150"),
    "delete-in-unsigned-tail": lambda db, _, __: db.execute("DELETE FROM records WHERE seq = 320"),
    "truncate-head": lambda db, _, __: db.execute("DELETE FROM records WHERE seq <= 3"),
    "truncate-tail-into-signed": lambda db, _, __: db.execute(
        "DELETE FROM records WHERE seq > 250"
    ),
    "truncate-unsigned-tail": lambda db, _, __: db.execute("DELETE FROM records WHERE seq > 303"),
    "truncate-last-record": lambda db, _, __: db.execute("DELETE FROM records WHERE seq = 343"),
    "swap-in-unsigned-tail": lambda db, _, __: _tamper_swap(db),
    "insert-in-unsigned-tail": lambda db, _, __: _tamper_insert(db),
    "append-without-mac": lambda db, _, __: _tamper_append(db, fake_key=False),
    "append-with-another-key": lambda db, _, __: _tamper_append(db, fake_key=True),
    "strip-macs": lambda db, _, __: db.execute("UPDATE records SET mac = NULL WHERE seq > 303"),
    "rewrite-whole-chain": lambda db, ledger, _: _tamper_rewrite_all(db, ledger),
    "replay-old-copy": lambda db, _, old: _tamper_restore_old_copy(db, old),
}


# Tampers before the witnessed checkpoint (found by `verify`; the writer checks from there on).
SIGNED_REGION = {"edit-signed", "delete-middle", "truncate-head"}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_every_tamper_is_found_and_never_signed(new_ledger: Opener, tamper: str) -> None:
    ledger, old_copy = _with_unsigned_tail(new_ledger)
    db = raw(ledger)
    rows_before = ledger.last_seq()
    TAMPERS[tamper](db, ledger, old_copy)
    report = ledger.verify()
    assert not report.ok, f"{tamper} went undetected"
    restarted = reopen(ledger, checkpoint_every=1)
    if tamper in SIGNED_REGION:
        # records a signed checkpoint already vouches for: the writer checks from that
        # checkpoint on, so it may append, but its checkpoints never make the damage pass
        restarted.append(event(1))
        restarted.close()
        assert not ledger.verify().ok
        return
    # the unsigned tail: a restarted writer refuses to append, so no checkpoint signs it
    with pytest.raises(LedgerTamperedError):
        restarted.append(event(1))
    with pytest.raises(LedgerTamperedError):
        restarted.checkpoint()
    with pytest.raises(LedgerTamperedError):
        restarted.open()
    after = db.execute("SELECT count(*) FROM records").fetchone()[0]
    assert after <= rows_before + 1  # nothing was appended by the refusing writer
    assert not ledger.verify().ok
    with contextlib.suppress(LedgerError):
        restarted.close()


def test_the_unsigned_tail_is_reported_and_authenticated(new_ledger: Opener) -> None:
    ledger, _ = _with_unsigned_tail(new_ledger)
    report = ledger.verify()
    assert report.unsigned_tail == 40 and report.macs_from == 1 and report.tip_seq == 343
    assert report.last_checkpoint_seq == 303
    # a restarted writer verifies that tail, extends it and its checkpoint signs it
    writer = reopen(ledger, checkpoint_every=1)
    writer.append(event(1))
    writer.close()
    final = ledger.verify()
    assert final.ok and final.unsigned_tail == 0


def test_two_ledgers_sharing_a_key_folder_keep_each_others_keys_on_rotation(
    tmp_path: Path,
) -> None:
    """Two ledgers (e.g. two data folders) may share one key folder. When one rotates to B and
    the other, still signing with A, rotates later, B is kept as a retired key: the first
    ledger's records signed with B still verify."""
    from faceledger.audit.keyring import key_id

    key_file = tmp_path / "keys" / "ledger.key"
    one, two = tmp_path / "one" / "ledger.sqlite3", tmp_path / "two" / "ledger.sqlite3"
    first, second = Ledger(one, key_file=key_file), Ledger(two, key_file=key_file)
    fill(first, 5)
    fill(second, 5)
    key_b = first.rotate_key("local:admin")
    first.append(event(6))  # MAC'd with B
    second.rotate_key("local:admin")  # its signer still holds A
    retired = {p.name.split(".")[-2] for p in key_file.parent.glob("*.retired")}
    assert key_b in retired and key_id(key_file.read_bytes()).hex() not in retired
    first.close()
    second.close()
    assert Ledger(one, key_file=key_file).verify().ok
    assert Ledger(two, key_file=key_file).verify().ok


def test_a_rotated_key_signs_on_and_the_old_records_still_verify(new_ledger: Opener) -> None:
    from faceledger.audit.keyring import key_id

    ledger = new_ledger(checkpoint_every=50)
    fill(ledger, 60)
    old_key = ledger.key_file.read_bytes()
    new_id = ledger.rotate_key("local:admin")
    new_key = ledger.key_file.read_bytes()
    assert new_key != old_key and key_id(new_key).hex() == new_id
    assert sorted(p.name for p in ledger.key_file.parent.glob("*.retired")) == [
        f"{ledger.key_file.name}.{key_id(old_key).hex()}.retired"
    ]
    ledger.append(event(99))
    ledger.close()
    reader = new_ledger()
    assert reader.verify().ok
    rotation = [e for e in reader.entries(include_checkpoints=True) if e.kind == "rotation"]
    assert len(rotation) == 1 and rotation[0].payload["new_key_id"] == new_id
    # a record appended with the retired key after the rotation is refused by verify
    db = raw(reader)
    (head,) = db.execute("SELECT max(seq) FROM records").fetchone()
    seq, body, digest, _ = _forged_row(db, head + 1, None)
    from faceledger.audit.keyring import RecordSigner

    db.execute(
        "INSERT INTO records VALUES (?, ?, ?, ?)",
        (seq, body, digest, RecordSigner(old_key).mac(body)),
    )
    report = reader.verify()
    assert not report.ok and report.first_bad_seq == seq and "retired" in (report.reason or "")
    # without the retired key, the old records cannot be checked: verify says which key
    for path in ledger.key_file.parent.glob("*.retired"):
        path.unlink()
    db.execute("DELETE FROM records WHERE seq = ?", (seq,))
    report = reader.verify()
    assert not report.ok and key_id(old_key).hex() in (report.reason or "")
    reader.close()
