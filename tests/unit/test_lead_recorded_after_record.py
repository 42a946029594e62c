"""A lead joins the review queue once a record naming it has landed, whichever path appends
that record: a verb's ``_run`` (the searches) or the after-the-call recorder that stream
matches and face-search jobs use (``services/wiring.ledger_record``, which the video service
is given). A failed outcome, or a record of another operation, leaves the lead out."""

from __future__ import annotations

from pathlib import Path

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.leads import Lead
from faceledger.domain.principals import Principal
from faceledger.services.gateway import Gateway
from helpers.leads import a_lead

STARTER = Caller(Principal("officer", ("search",), "K1"), "native", "s1")
REVIEWER = Caller(Principal("reviewer", ("review",), "K2"), "native", "r1")


def _lead(operation: str) -> Lead:
    return a_lead(operation=operation, source="stream")


def test_the_after_the_call_recorder_puts_a_lead_in_the_queue(tmp_path: Path) -> None:
    gate = Gateway(Settings(data_dir=tmp_path / "data"))
    try:
        record = gate._video.jobs.record  # what jobs and stream processors append with
        match, job, failed, other = (
            _lead("StreamFaceMatch"),
            _lead("FaceSearchJob"),
            _lead("FaceSearchJob"),
            _lead("StreamFaceMatch"),
        )
        for lead in (match, job, failed, other):
            gate._leads.store.add_lead(lead)
        assert gate.list_leads(REVIEWER).leads == ()

        record(STARTER, "StreamFaceMatch", "c", {"lead_id": match.lead_id}, "ok")
        gate._record(STARTER, "FaceSearchJob", "c", {"lead_id": job.lead_id}, "ok")
        record(STARTER, "FaceSearchJob", "c", {"lead_id": failed.lead_id}, "InternalServerError")
        record(STARTER, "StreamPersonDetected", None, {"lead_id": other.lead_id}, "ok")

        queue = {lead.lead_id for lead in gate.list_leads(REVIEWER).leads}
        assert queue == {match.lead_id, job.lead_id}
        hidden = {lead.lead_id for lead in gate.list_leads(REVIEWER, unrecorded=True).leads}
        assert hidden == {failed.lead_id, other.lead_id}
    finally:
        gate.close()
