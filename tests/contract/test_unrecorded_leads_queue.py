"""A lead whose search's ledger record never landed is not open work (issue 18), on both store
backends: the review queue, ``GET /v1/leads`` and ``audit leads`` list only leads whose search
was recorded; an auditor lists the others (``unrecorded``), and ``audit verify`` names them.

The lead is written before its search's record: a failed ledger write, or a process killed
(``kill -9``) between the two, leaves a lead no record names.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import LedgerError
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway
from helpers import lead_kill_worker
from helpers.gateways import gateway_settings, opened_gateway, refused_appends, synthetic_faces
from helpers.processes import python_env

ROOT = Caller(Principal("root", ROLES, "ROOT"), source="cli", request_id="setup")
OFFICER = Caller(Principal("officer", ("search",), "K1"), "native", "s1")
REVIEWER = Caller(Principal("reviewer", ("review",), "K2"), "native", "r1")
AUDITOR = Caller(Principal("auditor", ("audit",), "K3"), "native", "a1")
COLLECTION = "queue"
WORKER = Path(lead_kill_worker.__file__)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return gateway_settings(tmp_path, database_url)


@pytest.fixture
def gate(settings: Settings) -> Iterator[Gateway]:
    with opened_gateway(settings, ROOT, COLLECTION) as opened:
        yield opened


def _twins(gate: Gateway, seed: int) -> list[str]:
    """Enrol two faces with the same embedding: a search with either finds the other."""
    image = synthetic_faces(gate, COLLECTION, seed)
    assert image.faces.embeddings is not None
    same = np.stack([image.faces.embeddings[0]] * 2)
    image = replace(image, faces=replace(image.faces, embeddings=same))
    result = gate.index_faces(ROOT, COLLECTION, image, quality_filter="NONE")
    return [face.face_id for face, _ in result.face_records]


def _queue(gate: Gateway, caller: Caller = REVIEWER, **kw: Any) -> list[str]:
    return [lead.lead_id for lead in gate.list_leads(caller, **kw).leads]


def _lead_ids(gate: Gateway) -> list[str]:
    return [lead.lead_id for lead in gate._leads.every_lead()]


def test_a_lead_whose_record_failed_is_not_in_the_queue(gate: Gateway) -> None:
    recorded = gate.search_faces(OFFICER, COLLECTION, _twins(gate, 1)[0]).lead_id
    assert recorded is not None and _queue(gate) == [recorded]

    searches = refused_appends(gate, lambda event: event.operation == "SearchFaces")
    with searches, pytest.raises(LedgerError):  # its record fails (as on a full disk)
        gate.search_faces(OFFICER, COLLECTION, _twins(gate, 2)[0])
    [lost] = [lead_id for lead_id in _lead_ids(gate) if lead_id != recorded]

    assert _queue(gate) == [recorded]  # the review queue: recorded leads only
    assert _queue(gate, AUDITOR, state="open") == [recorded]
    assert _queue(gate, AUDITOR, unrecorded=True) == [lost]  # what an auditor can still find
    [listing] = [
        e.event.result
        for e in gate._ledger.entries(operation="ListLeads")
        if e.event is not None and e.event.result.get("unrecorded")
    ]
    assert listing["lead_ids"] == [lost]
    [warning] = gate.verify_ledger(AUDITOR).warnings
    assert "1 lead(s) unrecorded" in warning and lost in warning and recorded not in warning


def test_a_lead_whose_mark_failed_is_put_in_the_queue_by_verify(gate: Gateway) -> None:
    faces = _twins(gate, 3)
    real = gate._leads.store.mark_recorded

    def broken(lead_id: str) -> None:
        raise OSError("injected: the store is gone for a moment")

    gate._leads.store.mark_recorded = broken  # type: ignore[method-assign]
    lead_id = gate.search_faces(OFFICER, COLLECTION, faces[0]).lead_id  # the search succeeds
    gate._leads.store.mark_recorded = real  # type: ignore[method-assign]
    assert lead_id is not None and _queue(gate) == []

    assert gate.verify_ledger(AUDITOR).warnings == ()  # its record names it: not unrecorded
    assert _queue(gate) == [lead_id]  # and verify set its flag


def test_a_search_killed_before_its_record_leaves_no_open_lead(
    gate: Gateway, settings: Settings, database_url: str | None
) -> None:
    faces = _twins(gate, 4)
    gate.close()
    done = subprocess.run(
        [sys.executable, str(WORKER), str(settings.data_dir), COLLECTION, faces[0]],
        capture_output=True,
        text=True,
        env=python_env(FACELEDGER_DATABASE_URL=database_url or None),
        timeout=300,
    )
    assert done.returncode == -9 and "KILLED BEFORE THE RECORD" in done.stdout, done.stderr
    after = Gateway(settings)  # a restart
    try:
        [lost] = _lead_ids(after)
        assert _queue(after) == []
        assert _queue(after, AUDITOR, unrecorded=True) == [lost]
        [warning] = after.verify_ledger(AUDITOR).warnings
        assert lost in warning
        assert not [e for e in after._ledger.entries(operation="SearchFaces")]
    finally:
        after.close()
