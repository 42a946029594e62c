"""``verify`` of the SQLite ledger spread over worker processes (``faceledger.audit.parallel``):
on an intact ledger it is the one pass's report; on a tampered one, the first bad record and
the reason are exactly the one pass's — wherever the record sits in a worker's range (its
first, a middle one, its last, or in the last range). Also: workers are spawned, never
forked, and verify still answers when no worker process can start.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faceledger.audit import Ledger, VerifyReport, range_worker
from faceledger.audit.keyring import Keyring
from faceledger.audit.parallel import ParallelPlan, verify_sqlite_in_parallel
from helpers.ledger import event, raw
from helpers.processes import python_env

SEQUENTIAL = ParallelPlan.one_pass()
# 40 records a range: ranges start at 1, 41, 81, 121, … (small, so that a 300-record ledger
# has many ranges and boundaries)
SPREAD = ParallelPlan(workers=2, range_records=40, min_records=1)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """300 events (a checkpoint every 100 records), closed and reopened: 303 records, the last
    a checkpoint the witness names."""
    writer = Ledger(
        tmp_path / "data" / "ledger.sqlite3",
        key_file=tmp_path / "keys" / "ledger.key",
        checkpoint_every=100,
    )
    for start in range(0, 300, 25):
        writer.append_many(event(n) for n in range(start, start + 25))
    writer.close()
    return Ledger(writer.path, key_file=writer.key_file)


def _fields(report: VerifyReport) -> dict[str, Any]:
    fields = report.to_dict()
    del fields["seconds"]
    return fields


def test_an_intact_ledger_gets_the_one_pass_report_from_the_workers(ledger: Ledger) -> None:
    seen: list[tuple[int, int]] = []
    anchors, keyring = ledger.anchors.read(), Keyring.load(ledger.key_file)
    spread = verify_sqlite_in_parallel(
        ledger.path, anchors, keyring, SPREAD, lambda done, total: seen.append((done, total))
    )
    assert spread is not None  # answered by the workers, not by the fallback
    one_pass = ledger.verify(plan=SEQUENTIAL)
    assert one_pass.ok and one_pass.records == 303 and one_pass.witness_seq == 303
    assert _fields(spread) == _fields(one_pass)
    assert seen == [(min(k + 40, 303), 303) for k in range(0, 303, 40)]
    assert _fields(ledger.verify(plan=SPREAD)) == _fields(one_pass)


def _edit(db: Any, seq: int) -> None:
    (body,) = db.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()
    db.execute(
        "UPDATE records SET body = ? WHERE seq = ?", (body.replace(b"officer-", b"officex-"), seq)
    )


def _edit_and_rehash(db: Any, seq: int) -> None:
    _edit(db, seq)
    (body,) = db.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()
    db.execute("UPDATE records SET digest = ? WHERE seq = ?", (hashlib.sha256(body).digest(), seq))


def _swap_with_next(db: Any, seq: int) -> None:
    db.execute("UPDATE records SET seq = -1 WHERE seq = ?", (seq,))
    db.execute("UPDATE records SET seq = ? WHERE seq = ?", (seq, seq + 1))
    db.execute("UPDATE records SET seq = ? WHERE seq = -1", (seq + 1,))


TAMPERS = {
    "body-edited": _edit,
    "edited-digest-recomputed": _edit_and_rehash,  # a good digest, a bad MAC
    "mac-stripped": lambda db, seq: db.execute(
        "UPDATE records SET mac = NULL WHERE seq = ?", (seq,)
    ),
    "row-deleted": lambda db, seq: db.execute("DELETE FROM records WHERE seq = ?", (seq,)),
    "swapped-with-next": _swap_with_next,
    "tail-truncated": lambda db, seq: db.execute("DELETE FROM records WHERE seq >= ?", (seq,)),
}
WHERE = {"range-middle": 57, "range-end": 80, "range-start": 81, "last-range": 299}


@pytest.mark.parametrize("where", sorted(WHERE))
@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_the_first_bad_record_is_named_as_the_one_pass_names_it(
    ledger: Ledger, tamper: str, where: str
) -> None:
    TAMPERS[tamper](raw(ledger), WHERE[where])
    one_pass = ledger.verify(plan=SEQUENTIAL)
    assert not one_pass.ok and one_pass.first_bad_seq is not None
    assert _fields(ledger.verify(plan=SPREAD)) == _fields(one_pass)


def test_the_workers_never_run_the_callers_script_again(ledger: Ledger, tmp_path: Path) -> None:
    """A script without a ``__main__`` guard (as a library user may write): its top level
    runs once, in its own process; the workers are fresh interpreters running only the worker
    module (``multiprocessing``'s spawn would run it again in every worker)."""
    marker = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\n"
        "from faceledger.audit import Ledger\n"
        "from faceledger.audit.keyring import Keyring\n"
        "from faceledger.audit.parallel import ParallelPlan, verify_sqlite_in_parallel\n"
        f"with open({str(marker)!r}, 'a') as runs:\n"
        "    runs.write('ran\\n')\n"
        f"ledger = Ledger(Path({str(ledger.path)!r}), key_file=Path({str(ledger.key_file)!r}))\n"
        "plan = ParallelPlan(workers=2, range_records=40, min_records=1)\n"
        "report = verify_sqlite_in_parallel(\n"
        "    ledger.path, ledger.anchors.read(), Keyring.load(ledger.key_file), plan\n"
        ")\n"
        "print('workers', report is not None and report.ok and report.records)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], env=python_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "workers 303"
    assert marker.read_text() == "ran\n"


@pytest.mark.parametrize(
    ("command", "logged"),
    [
        (["/nonexistent/python"], "cannot start worker processes"),
        ([sys.executable, "-c", "import sys; sys.exit('no answer from me')"], "no answer from me"),
    ],
    ids=["cannot-start", "stops-without-answering"],
)
def test_verify_answers_in_one_process_when_the_workers_fail(
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    command: list[str],
    logged: str,
) -> None:
    monkeypatch.setattr(range_worker, "worker_command", lambda: command)
    anchors, keyring = ledger.anchors.read(), Keyring.load(ledger.key_file)
    with caplog.at_level(logging.WARNING, logger="faceledger.audit.parallel"):
        assert verify_sqlite_in_parallel(ledger.path, anchors, keyring, SPREAD) is None
    assert logged in caplog.text  # the worker's own words, when it said any
    report = ledger.verify(plan=SPREAD)
    assert report.ok and report.records == 303
