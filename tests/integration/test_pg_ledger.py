"""The audit ledger on PostgreSQL: one chain from several OS processes, ``kill -9`` of writers,
the backend chosen by ``FACELEDGER_DATABASE_URL``, and the CLI reading it unchanged.

The ledger's contract (chain, tampering, checkpoints, guard, filters) runs on both backends in
``test_ledger.py``. Run as a script, this file is the worker the process tests start
(``append`` and ``crash`` modes, see ``_worker``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceledger.audit import Ledger
from faceledger.audit.chain import KIND_CHECKPOINT
from faceledger.audit.postgres import PostgresLedger
from faceledger.config import Settings
from faceledger.domain.errors import LedgerError
from helpers.ledger import append_until_told, event, raw  # as the contract tests
from helpers.processes import python_env

WORKERS = 3


def _spawn(mode: str, url: str, key_file: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, mode, url, str(key_file), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),  # run as a script, this file imports helpers
    )


def _ready(worker: subprocess.Popen[str]) -> None:
    assert worker.stdout is not None
    line = worker.stdout.readline().strip()
    if line != "READY":
        worker.kill()
        _, err = worker.communicate(timeout=30)
        pytest.fail(f"the ledger worker did not start: {line!r} {err}")


def test_processes_append_concurrently_into_one_chain(
    migrated_database: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "ledger.key"
    ledger = PostgresLedger(migrated_database, key_file=key_file, checkpoint_every=150)
    ledger.append(event(0))  # the key exists before the processes race for it
    workers = [_spawn("append", migrated_database, key_file, 400) for _ in range(WORKERS)]
    for worker in workers:
        _ready(worker)
    for worker in workers:  # every process is connected; all start appending together
        assert worker.stdin is not None
        worker.stdin.write("GO\n")
        worker.stdin.flush()
    ours: dict[int, str] = {}
    lock = threading.Lock()

    def append(k: int) -> None:
        for n in range(100):
            entries = ledger.append_many([event(k * 1000 + n), event(k * 1000 + n + 500)])
            with lock:
                ours.update((e.seq, e.digest) for e in entries)

    threads = [threading.Thread(target=append, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acks = dict(ours)
    per_worker: list[list[int]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        lines = [line.split() for line in out.splitlines()]
        assert len(lines) == 400
        seqs = []
        for seq, digest in lines:
            assert int(seq) not in acks  # no seq handed out twice
            acks[int(seq)] = digest
            seqs.append(int(seq))
        per_worker.append(seqs)
    ledger.close()
    assert len(acks) == 800 + WORKERS * 400
    for seqs in per_worker:  # each process's records interleave with the others'
        assert min(seqs) < max(ours) and min(ours) < max(seqs)
    reader = PostgresLedger(migrated_database, key_file=key_file)
    stored = {e.seq: e.digest for e in reader.entries()}
    assert len(stored) == 1 + len(acks)
    assert all(stored[seq] == digest for seq, digest in acks.items())
    report = reader.verify()
    assert report.ok, report.reason
    # the count triggers checkpoints in whichever process crosses it; each closing process
    # signs its own tail
    assert report.checkpoints >= (1 + len(acks)) // 151 and report.last_checkpoint_seq
    assert report.records == reader.last_seq() == report.last_seq
    reader.close()


def test_kill_9_of_writers_loses_no_acknowledged_record(
    migrated_database: str, tmp_path: Path
) -> None:
    """Three processes append from four threads each; they are killed with SIGKILL one by one
    at random moments while the others go on. Every append a process saw acknowledged is in
    the chain, which verifies and carries on."""
    key_file = tmp_path / "keys" / "ledger.key"
    PostgresLedger(migrated_database, key_file=key_file).close()
    rng = random.Random(11)
    acknowledged: list[int] = []
    for _round in range(2):
        workers = [_spawn("crash", migrated_database, key_file, 0) for _ in range(WORKERS)]
        for worker in workers:
            _ready(worker)
        for worker in workers:
            time.sleep(rng.uniform(0.1, 0.4))
            os.kill(worker.pid, signal.SIGKILL)
        for worker in workers:
            out, _ = worker.communicate(timeout=30)
            acknowledged += [int(line) for line in out.split()]
    assert len(acknowledged) > 50 and len(set(acknowledged)) == len(acknowledged)
    ledger = PostgresLedger(migrated_database, key_file=key_file)
    stored = {e.seq for e in ledger.entries()}
    assert set(acknowledged) <= stored
    report = ledger.verify()
    assert report.ok, report.reason
    assert ledger.append(event(1)).seq == ledger.last_seq()  # no lock left behind
    ledger.close()
    assert PostgresLedger(migrated_database, key_file=key_file).verify().ok


def test_from_settings_chooses_postgres_and_the_cli_reads_it(
    migrated_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceledger.cli.main import app

    key_file = tmp_path / "keys" / "ledger.key"
    settings = Settings(
        data_dir=tmp_path / "data", database_url=migrated_database, ledger_key_file=key_file
    )
    ledger = Ledger.from_settings(settings)
    assert isinstance(ledger, PostgresLedger)
    ledger.append_many([event(n) for n in range(5)])
    ledger.close()
    assert not (tmp_path / "data" / "ledger.sqlite3").exists()  # nothing went to a file
    monkeypatch.setenv("FACELEDGER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACELEDGER_DATABASE_URL", migrated_database)
    monkeypatch.setenv("FACELEDGER_LEDGER_KEY_FILE", str(key_file))
    runner = CliRunner()
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["ok"] and report["records"] == 6 and report["ledger"].startswith("postgresql://")
    exported = runner.invoke(app, ["audit", "export", "--principal", "officer-3"])
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line)["request_id"] for line in exported.output.splitlines()] == ["req-3"]
    tail = runner.invoke(app, ["audit", "tail", "-n", "4", "--json"])
    # the CLI's own VerifyLedger and ExportLedger records follow (reads are ledgered too)
    tailed = [(r["operation"], r["request_id"]) for r in json.loads(tail.output)]
    assert tailed[:2] == [("SearchFacesByImage", "req-3"), ("SearchFacesByImage", "req-4")]
    assert [op for op, _ in tailed[2:]] == ["VerifyLedger", "ExportLedger"]
    # a tampered record is found through the CLI too
    raw(ledger).execute(
        "UPDATE records SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        "'officer-2', 'officer-9'), 'UTF8') WHERE seq = 3"
    )
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and broken.output.startswith("first bad record: 3:")


def test_a_database_without_the_ledger_tables_says_to_upgrade(
    postgres_database: str, tmp_path: Path
) -> None:
    with pytest.raises(LedgerError, match="faceledger db upgrade"):
        PostgresLedger(postgres_database, key_file=tmp_path / "keys" / "ledger.key")


def test_checkpoints_of_other_processes_count(migrated_database: str, tmp_path: Path) -> None:
    """Two ledgers (as two API processes) on one database: the count that schedules a
    checkpoint is the chain's, not each process's, and each signs only what is unsigned."""
    key_file = tmp_path / "keys" / "ledger.key"
    a = PostgresLedger(migrated_database, key_file=key_file, checkpoint_every=10)
    b = PostgresLedger(migrated_database, key_file=key_file, checkpoint_every=10)
    assert a.ledger_id == b.ledger_id
    for n in range(12):
        (a if n % 2 else b).append(event(n))
    kinds = [e.kind for e in a.entries(include_checkpoints=True)]
    assert kinds.count(KIND_CHECKPOINT) == 1 and kinds[10] == KIND_CHECKPOINT
    a.close()
    b.close()
    final = [e for e in b.entries(include_checkpoints=True)]
    assert final[-1].kind == KIND_CHECKPOINT  # the tail was signed by whoever closed first
    assert [e.kind for e in final].count(KIND_CHECKPOINT) == 2  # and not signed twice
    assert PostgresLedger(migrated_database, key_file=key_file).verify().ok


# -- the worker processes ---------------------------------------------------------------------
def _worker(mode: str, url: str, key_file: Path, count: int) -> None:
    """The worker process of this file's process tests (see ``append_until_told``)."""
    append_until_told(PostgresLedger(url, key_file=key_file, checkpoint_every=50), mode, count)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
