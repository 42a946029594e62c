"""Association changes reconcile like face changes: a worker killed (``kill -9``) between an
AssociateFaces / DisassociateFaces / DeleteUser intent and its outcome is reconciled as
applied ("ok", naming the faces) when the store committed, and as "NoChange" when it did not,
from the store's ``user_changes`` log. On both backends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.evaluation.synthetic import synthetic_image
from faceledger.services.gateway import Gateway, local_operator
from helpers import association_worker
from helpers.processes import run_and_kill

WORKER = Path(association_worker.__file__)
COLLECTION = association_worker.COLLECTION
CALLER = local_operator()
USER = "u1"


def _prepare(settings: Settings, verb: str, user_id: str = USER) -> str:
    """A collection with two faces and a user (who owns the first face, unless the worker is
    to associate it); the first face's id."""
    gate = Gateway(settings)
    try:
        gate.create_collection(CALLER, COLLECTION)
        dim = gate._collections.store.embedding_dim(COLLECTION)
        image = synthetic_image(np.random.default_rng(7), 2, dim)
        indexed = gate.index_faces(CALLER, COLLECTION, image, quality_filter="NONE")
        face_id = indexed.face_records[0][0].face_id
        gate.create_user(CALLER, COLLECTION, user_id)
        if verb != "associate":
            gate.associate_faces(CALLER, COLLECTION, user_id, [face_id])
        return face_id
    finally:
        gate.close()


def _recovered(gate: Gateway) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in gate._ledger.entries() if e.event.phase == "recovered"]


OPERATION = {
    "associate": "AssociateFaces",
    "disassociate": "DisassociateFaces",
    "delete_user": "DeleteUser",
}


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("verb", association_worker.VERBS)
def test_an_association_killed_between_intent_and_outcome_reconciles(
    tmp_path: Path, database_url: str | None, verb: str, point: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, database_url=database_url)
    face_id = _prepare(settings, verb)
    args = [str(settings.data_dir), verb, point, USER, face_id]
    run_and_kill(WORKER, args, 0.05, settings.database_url)

    gate = Gateway(settings)  # start-up reconciles the dead worker's open intent
    try:
        assert gate._ledger.open_intents() == []
        [record] = _recovered(gate)
        assert record["operation"] == OPERATION[verb]
        assert record["principal"] == CALLER.principal.name
        store = gate._collections.store
        owned = store.user_face_ids(COLLECTION, USER) if store.user_exists(COLLECTION, USER) else []
        result = record["result"]
        if point == "before":  # the store never changed
            assert record["outcome"] == "NoChange"
            assert (result["associated"], result["disassociated"]) == ([], [])
            assert not result["user_deleted"]
            assert owned == ([] if verb == "associate" else [face_id])
            assert store.user_exists(COLLECTION, USER)
        else:  # the store committed: the record says what it did
            assert record["outcome"] == "ok"
            assert result["associated"] == ([face_id] if verb == "associate" else [])
            assert result["disassociated"] == ([] if verb == "associate" else [face_id])
            assert result["user_deleted"] == (verb == "delete_user")
            assert owned == ([face_id] if verb == "associate" else [])
            assert store.user_exists(COLLECTION, USER) == (verb != "delete_user")
        assert gate._ledger.verify().ok
    finally:
        gate.close()


def test_a_change_outside_an_intent_logs_nothing(tmp_path: Path, database_url: str | None) -> None:
    """The store logs association changes only under an intent (the gateway's); the intent's
    own outcome record closes it, and nothing is left for reconciliation."""
    settings = Settings(data_dir=tmp_path / "data", workers=1, database_url=database_url)
    face_id = _prepare(settings, "associate")
    gate = Gateway(settings)
    try:
        store = gate._collections.store
        store.associate(COLLECTION, USER, [face_id])  # no intent: a store call of its own
        assert store.user_face_ids(COLLECTION, USER) == [face_id]
        gate.disassociate_faces(CALLER, COLLECTION, USER, [face_id])
        [outcome] = [
            e.event
            for e in gate._ledger.entries(operation="DisassociateFaces")
            if e.event.phase == "outcome"
        ]
        assert outcome.intent_id is not None
        [logged] = store.user_intent_changes(outcome.intent_id)
        assert (logged.collection_id, logged.kind, logged.face_ids) == (
            COLLECTION,
            "disassociate",
            (face_id,),
        )
        assert gate._ledger.open_intents() == [] and gate.reconcile() == []
    finally:
        gate.close()


def _intent_of(gate: Gateway, operation: str) -> str:
    [intent_id] = [
        e.event.intent_id
        for e in gate._ledger.entries(operation=operation)
        if e.event.phase == "outcome" and e.event.intent_id
    ]
    return intent_id


def test_settled_rows_are_pruned_and_a_deleted_user_leaves_no_trace(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, database_url=database_url)
    forgotten = "user-who-asked-to-be-forgotten"
    face_id = _prepare(settings, "associate", forgotten)
    gate = Gateway(settings)
    try:
        store = gate._collections.store
        gate.associate_faces(CALLER, COLLECTION, forgotten, [face_id])
        gate.delete_user(CALLER, COLLECTION, forgotten)
        associated, deleted = _intent_of(gate, "AssociateFaces"), _intent_of(gate, "DeleteUser")
        assert [c.kind for c in store.user_intent_changes(deleted)] == ["delete_user"]
        if database_url is None:  # the store's files never name the deleted user
            files = [p for p in settings.data_dir.iterdir() if p.name.startswith("faceledger")]
            assert files and not any(forgotten.encode() in p.read_bytes() for p in files)
        gate.maintain()  # the rows are younger than the margin: kept
        assert store.user_intent_changes(associated) and store.user_intent_changes(deleted)
        # rows of settled intents go; those of intents still open (here: one named) stay
        assert store.prune_user_changes(time.time() + 1, [deleted]) == 1
        assert store.user_intent_changes(associated) == []
        assert [c.face_ids for c in store.user_intent_changes(deleted)] == [(face_id,)]
    finally:
        gate.close()
