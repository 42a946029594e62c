"""The gateway's maintenance pass purges faces past their collection's retention on the record:
an intent naming the faces, the purge, an outcome saying what went, by ``system:retention``;
nothing expired, no record. On both backends."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceledger.config import Settings
from faceledger.domain.policy import CollectionPolicy
from faceledger.services.gateway import Gateway, local_operator
from faceledger.store.factory import SQLITE_FILE
from helpers.gateways import gateway_settings, opened_gateway, synthetic_faces

CALLER = local_operator()
DAY_S = 86400.0


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return gateway_settings(tmp_path, database_url)


@pytest.fixture
def gate(settings: Settings) -> Iterator[Gateway]:
    with opened_gateway(settings) as opened:
        yield opened


def _enrol(gate: Gateway, collection_id: str, seed: int) -> list[str]:
    gate.create_collection(CALLER, collection_id)
    image = synthetic_faces(gate, collection_id, seed, faces=3)
    result = gate.index_faces(CALLER, collection_id, image, quality_filter="NONE")
    return [face.face_id for face, _ in result.face_records]


def _age(settings: Settings, face_ids: list[str], days: float) -> None:
    """Test-only: pretend the faces were enrolled ``days`` days earlier than they were."""
    sql = "UPDATE faces SET created_at = created_at - {} WHERE face_id = {}"
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as db:
            for face_id in face_ids:
                db.execute(sql.format("%s", "%s"), (days * DAY_S, face_id))
        return
    db = sqlite3.connect(settings.data_dir / SQLITE_FILE)
    with db:
        for face_id in face_ids:
            db.execute(sql.format("?", "?"), (days * DAY_S, face_id))
    db.close()


def _purges(gate: Gateway) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in gate._ledger.entries(operation="PurgeExpiredFaces")]


def test_maintain_purges_expired_faces_between_an_intent_and_an_outcome(
    gate: Gateway, settings: Settings
) -> None:
    kept = _enrol(gate, "kept", 1)  # no retention: never purged, however old
    faces = _enrol(gate, "expiring", 2)
    gate.put_policy(CALLER, "expiring", CollectionPolicy(retention_days=30))
    _age(settings, kept, 400)
    _age(settings, faces[:2], 40)

    assert gate.maintain() == {"purged": {"expiring": 2}}

    intent, outcome = _purges(gate)
    for record in (intent, outcome):
        assert record["principal"] == "system:retention"
        assert record["collection_id"] == "expiring"
    assert intent["phase"] == "intent" and intent["outcome"] == "pending"
    assert sorted(intent["result"]["face_ids"]) == sorted(faces[:2])
    assert outcome["phase"] == "outcome" and outcome["outcome"] == "ok"
    assert outcome["intent_id"] == intent["intent_id"]
    assert sorted(outcome["result"]["deleted"]) == sorted(faces[:2])
    assert outcome["result"]["retention_days"] == 30
    assert gate._ledger.open_intents() == []
    assert [f.face_id for f in gate.list_faces(CALLER, "expiring").faces] == faces[2:]
    assert len(gate.list_faces(CALLER, "kept").faces) == 3

    assert gate.maintain() == {"purged": {}}  # nothing expired since: no change, no record
    assert len(_purges(gate)) == 2
    assert gate._ledger.verify().ok


def test_maintain_with_nothing_to_purge_writes_nothing(gate: Gateway) -> None:
    _enrol(gate, "fresh", 3)
    gate.put_policy(CALLER, "fresh", CollectionPolicy(retention_days=1))
    before = gate._ledger.last_seq()
    assert gate.maintain() == {"purged": {}}
    assert gate._ledger.last_seq() == before
    assert len(gate.list_faces(CALLER, "fresh").faces) == 3
