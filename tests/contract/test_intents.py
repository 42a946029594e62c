"""No biometric change without a record: intent before the store changes, outcome after, and
reconciliation of intents left open (a failed outcome write, or ``kill -9``) against the store's
change log. On both backends."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError
from faceledger.domain.faces import AnalysedImage
from faceledger.services.gateway import Gateway, local_operator
from helpers import intent_worker
from helpers.gateways import gateway_settings, opened_gateway, refused_appends, synthetic_faces
from helpers.processes import run_and_kill

WORKER = Path(intent_worker.__file__)
COLLECTION = intent_worker.COLLECTION
CALLER = local_operator()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return gateway_settings(tmp_path, database_url)


@pytest.fixture
def gate(settings: Settings) -> Iterator[Gateway]:
    with opened_gateway(settings, CALLER, COLLECTION) as opened:
        yield opened


def _image(gate: Gateway, seed: int) -> AnalysedImage:
    return synthetic_faces(gate, COLLECTION, seed)


def _records(gate: Gateway, operation: str | None = None) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in gate._ledger.entries(operation=operation)]


def _stored(gate: Gateway) -> set[str]:
    rows = gate._collections.store.list_faces(COLLECTION, after_row=0, limit=10**6)
    return {r.face.face_id for r in rows}


def _phase(phase: str) -> Callable[[AuditEvent], bool]:
    """Picks the records of one phase, for the ledger to refuse (as a full disk would)."""
    return lambda event: event.phase == phase


def test_a_change_writes_an_intent_then_its_outcome(gate: Gateway) -> None:
    result = gate.index_faces(CALLER, COLLECTION, _image(gate, 1), quality_filter="NONE")
    ids = [f.face_id for f, _ in result.face_records]
    intent, outcome = _records(gate, "IndexFaces")
    assert intent["phase"] == "intent" and intent["outcome"] == "pending"
    assert outcome["phase"] == "outcome" and outcome["outcome"] == "ok"
    assert intent["intent_id"] == outcome["intent_id"]
    assert outcome["result"]["indexed"] == ids
    assert intent["probe_sha256"] == outcome["probe_sha256"]  # the image's hash, before
    assert [c.face_id for c in gate._collections.store.intent_changes(intent["intent_id"])] == ids
    assert gate._ledger.open_intents() == []
    # reads and non-biometric verbs stay one record
    gate.list_faces(CALLER, COLLECTION)
    assert [r.get("phase") for r in _records(gate, "ListFaces")] == [None]


def test_if_the_intent_cannot_be_written_nothing_changes(gate: Gateway) -> None:
    with refused_appends(gate, _phase("intent")), pytest.raises(LedgerError):
        gate.index_faces(CALLER, COLLECTION, _image(gate, 2), quality_filter="NONE")
    assert gate._collections.store.collection(COLLECTION).face_count == 0
    assert gate._ledger.open_intents() == []


def test_a_failed_outcome_write_is_recovered_from_the_change_log(
    gate: Gateway, settings: Settings
) -> None:
    kept = gate.index_faces(CALLER, COLLECTION, _image(gate, 3), quality_filter="NONE")
    victim = kept.face_records[0][0].face_id
    with refused_appends(gate, _phase("outcome")):
        with pytest.raises(LedgerError):  # the store committed; the outcome record did not
            gate.index_faces(CALLER, COLLECTION, _image(gate, 4), quality_filter="NONE")
        with pytest.raises(LedgerError):
            gate.delete_faces(CALLER, COLLECTION, [victim])
    stored = _stored(gate)
    unrecorded = stored - {f.face_id for f, _ in kept.face_records}
    assert len(unrecorded) == 2 and victim not in stored
    assert len(gate._ledger.open_intents()) == 2

    # the maintenance pass (or the next start) records what the store committed
    assert len(gate.reconcile()) == 2
    recovered = [r for r in _records(gate) if r.get("phase") == "recovered"]
    assert {r["operation"] for r in recovered} == {"IndexFaces", "DeleteFaces"}
    by_op = {r["operation"]: r for r in recovered}
    assert set(by_op["IndexFaces"]["result"]["indexed"]) == unrecorded
    assert by_op["DeleteFaces"]["result"]["deleted"] == [victim]
    assert all(r["outcome"] == "ok" and r["principal"] == CALLER.principal.name for r in recovered)
    assert gate._ledger.open_intents() == []
    assert gate.reconcile() == []  # once only
    assert gate._ledger.verify().ok


def test_an_intent_whose_change_never_committed_is_recorded_as_no_change(
    gate: Gateway,
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process is interrupted after its intent, before the store

    gate._collections.enrol = boom  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        gate.index_faces(CALLER, COLLECTION, _image(gate, 5), quality_filter="NONE")
    assert len(gate._ledger.open_intents()) == 1
    [intent_id] = gate.reconcile()
    [recovered] = [r for r in _records(gate) if r.get("phase") == "recovered"]
    assert recovered["intent_id"] == intent_id and recovered["outcome"] == "NoChange"


def test_after_kill_9_every_stored_or_deleted_face_is_in_the_ledger(
    settings: Settings, store_backend: str
) -> None:
    rng = random.Random(20261206)
    acked_add: set[str] = set()
    acked_del: set[str] = set()
    rounds = 6 if store_backend == "sqlite" else 3
    for round_number in range(rounds):
        args = [str(settings.data_dir), str(round_number), str(1000 * round_number)]
        lines = run_and_kill(WORKER, args, rng.uniform(0.3, 1.5), settings.database_url)
        for line in lines:
            kind, *_, face_id = line.split()  # ADD <ext> <id>, DELETING <id>, DEL <id>
            if kind in ("ADD", "DEL"):
                (acked_add if kind == "ADD" else acked_del).add(face_id)
        gate = Gateway(settings)  # start-up reconciles the dead worker's open intents
        try:
            assert gate._ledger.open_intents() == []
            stored = _stored(gate)
            indexed: set[str] = set()
            deleted: set[str] = set()
            for record in _records(gate):
                if record.get("phase") in ("outcome", "recovered"):
                    indexed |= set(record["result"].get("indexed", []))
                    deleted |= set(record["result"].get("deleted", []))
            assert stored <= indexed, f"round {round_number}: faces stored without a record"
            assert (indexed - stored) <= deleted, "faces gone without a deletion record"
            # a deletion killed before its ack may have committed: the ledger says so
            assert acked_add - deleted <= stored, "an acknowledged enrolment was lost"
            assert not acked_del & stored, "an acknowledged deletion came back"
            assert gate._ledger.verify().ok
        finally:
            gate.close()
    assert len(acked_add) > 20 and acked_del
