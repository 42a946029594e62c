"""A review round trip through ``/v1`` and the Rekognition API on the live server: a search
with candidates makes a lead (``lead_id`` in the /v1 answer, ``X-FaceLedger-Lead-Id`` on the
Rekognition response, the lead id in the search's ledger record); a reviewer lists it, records
a decision (a ledger record linked to the search), and the lead reads as decided. The searcher
may not review their own lead; an auditor reads but may not decide."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from helpers.data import lfw_people

PURPOSE = {"X-FaceLedger-Purpose": "lead review test", "X-FaceLedger-Case": "LEAD-1"}


@pytest.fixture(scope="module")
def people(data_dir: Path) -> list[list[bytes]]:
    """Two photos each of two LFW people."""
    found = lfw_people(data_dir, min_images=2, count=2)
    return [[p.read_bytes() for p in photos[:2]] for photos in found.values()]


def _bearer(key: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key[0]}:{key[1]}"}


def _records(settings: Settings, operation: str) -> list[Any]:
    with Ledger.from_settings(settings) as ledger:
        return [
            e.event
            for e in ledger.entries(operation=operation)
            if e.event is not None and e.payload.get("phase", "outcome") == "outcome"
        ]


@pytest.fixture(scope="module")
def enrolled(live_server: str, auth_headers: dict[str, str], people: list[list[bytes]]) -> str:
    """A collection holding the first photo of the first person."""
    with httpx.Client(base_url=live_server, headers=auth_headers, timeout=120) as api:
        assert api.post("/v1/collections", json={"collection_id": "leads-rt"}).status_code == 201
        indexed = api.post(
            "/v1/collections/leads-rt/faces",
            files={"image": people[0][0]},
            data={"external_image_id": "person-a"},
        )
        assert indexed.status_code == 200, indexed.text
    return "leads-rt"


def test_review_round_trip_through_v1(
    live_server: str,
    auth_headers: dict[str, str],
    make_key: Callable[[str, list[str]], tuple[str, str]],
    live_server_settings: Settings,
    people: list[list[bytes]],
    enrolled: str,
) -> None:
    search_url = f"/v1/collections/{enrolled}/search"
    with httpx.Client(
        base_url=live_server, headers={**auth_headers, **PURPOSE}, timeout=120
    ) as api:
        found = api.post(search_url, files={"image": people[0][1]})
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["matches"], body
        lead_id = body["lead_id"]
        assert lead_id
        stranger = api.post(search_url, files={"image": people[1][0]}).json()
        assert stranger["matches"] == [] and stranger["lead_id"] is None
    search = next(
        r
        for r in _records(live_server_settings, "SearchFacesByImage")
        if r.result.get("lead_id") == lead_id
    )
    face_id = body["matches"][0]["face"]["face_id"]

    reviewer = make_key("rt-reviewer", ["review"])
    with httpx.Client(base_url=live_server, headers=_bearer(reviewer), timeout=60) as api:
        queue = api.get("/v1/leads", params={"state": "open", "collection_id": enrolled}).json()
        assert lead_id in [lead["lead_id"] for lead in queue["leads"]]
        lead = api.get(f"/v1/leads/{lead_id}").json()
        assert lead["state"] == "open" and lead["principal"] == "test-admin"
        assert lead["request_id"] == search.request_id and lead["case_reference"] == "LEAD-1"
        assert [c["candidate_id"] for c in lead["candidates"]] == [face_id]
        assert lead["candidates"][0]["external_image_id"] == "person-a"

        no_note = api.post(
            f"/v1/leads/{lead_id}/decisions",
            json={"candidate_id": face_id, "decision": "confirmed"},
        )
        assert no_note.status_code == 400
        assert no_note.json()["error"]["code"] == "InvalidParameterException"
        stranger_face = api.post(
            f"/v1/leads/{lead_id}/decisions",
            json={"candidate_id": "not-a-candidate", "decision": "rejected"},
        )
        assert stranger_face.status_code == 400

        decided = api.post(
            f"/v1/leads/{lead_id}/decisions",
            json={"candidate_id": face_id, "decision": "confirmed", "note": "same scar"},
        )
        assert decided.status_code == 201, decided.text
        assert decided.json()["state"] == "decided"
        lead = api.get(f"/v1/leads/{lead_id}").json()
        assert lead["state"] == "decided"
        assert lead["candidates"][0]["decision"] == "confirmed"
        assert [(d["reviewer"], d["note"]) for d in lead["decisions"]] == [
            ("rt-reviewer", "same scar")
        ]
        queue = api.get("/v1/leads", params={"state": "open", "collection_id": enrolled}).json()
        assert lead_id not in [lead["lead_id"] for lead in queue["leads"]]

    record = next(
        r
        for r in _records(live_server_settings, "ReviewLead")
        if r.outcome == "ok" and r.result.get("lead_id") == lead_id
    )
    assert record.principal == "rt-reviewer"
    assert record.result["search_request_id"] == search.request_id
    assert record.result["candidate"] == face_id
    assert record.result["decision"] == "confirmed"
    assert record.result["note"] == "same scar"


def test_the_searcher_may_not_review_their_own_lead(
    live_server: str,
    auth_headers: dict[str, str],
    make_key: Callable[[str, list[str]], tuple[str, str]],
    live_server_settings: Settings,
    people: list[list[bytes]],
    enrolled: str,
) -> None:
    officer = make_key("rt-officer", ["search", "review"])
    with httpx.Client(
        base_url=live_server, headers={**_bearer(officer), **PURPOSE}, timeout=120
    ) as api:
        found = api.post(f"/v1/collections/{enrolled}/search", files={"image": people[0][1]})
        lead_id = found.json()["lead_id"]
        face_id = found.json()["matches"][0]["face"]["face_id"]
        own = api.post(
            f"/v1/leads/{lead_id}/decisions",
            json={"candidate_id": face_id, "decision": "rejected", "note": "looks fine to me"},
        )
        assert own.status_code == 403
        assert own.json()["error"]["code"] == "AccessDeniedException"
        assert api.get(f"/v1/leads/{lead_id}").json()["decisions"] == []
    refused = [
        r
        for r in _records(live_server_settings, "ReviewLead")
        if r.principal == "rt-officer" and lead_id in r.result.get("message", "")
    ]
    assert [r.outcome for r in refused] == ["AccessDeniedException"]

    auditor = make_key("rt-auditor", ["audit"])
    with httpx.Client(base_url=live_server, headers=_bearer(auditor), timeout=60) as api:
        assert api.get(f"/v1/leads/{lead_id}").status_code == 200
        denied = api.post(
            f"/v1/leads/{lead_id}/decisions",
            json={"candidate_id": face_id, "decision": "rejected"},
        )
        assert denied.status_code == 403


def test_rekognition_search_carries_the_lead_header(
    live_server: str,
    api_key: tuple[str, str],
    auth_headers: dict[str, str],
    make_key: Callable[[str, list[str]], tuple[str, str]],
    people: list[list[bytes]],
    enrolled: str,
) -> None:
    rek = boto3.client(
        "rekognition",
        endpoint_url=live_server,
        region_name="us-east-1",
        aws_access_key_id=api_key[0],
        aws_secret_access_key=api_key[1],
        config=Config(retries={"max_attempts": 1}),
    )
    found = rek.search_faces_by_image(CollectionId=enrolled, Image={"Bytes": people[0][1]})
    assert found["FaceMatches"]
    lead_id = found["ResponseMetadata"]["HTTPHeaders"]["x-faceledger-lead-id"]
    assert set(found) == {
        "SearchedFaceBoundingBox",
        "SearchedFaceConfidence",
        "FaceMatches",
        "FaceModelVersion",
        "ResponseMetadata",
    }
    by_id = rek.search_faces(
        CollectionId=enrolled, FaceId=found["FaceMatches"][0]["Face"]["FaceId"]
    )
    assert by_id["FaceMatches"] == []  # the only face: no candidate, no lead
    assert "x-faceledger-lead-id" not in by_id["ResponseMetadata"]["HTTPHeaders"]
    stranger = rek.search_faces_by_image(CollectionId=enrolled, Image={"Bytes": people[1][0]})
    assert "x-faceledger-lead-id" not in stranger["ResponseMetadata"]["HTTPHeaders"]

    admin = httpx.Client(base_url=live_server, headers=auth_headers, timeout=60)
    with admin:  # the admin key cannot read leads: it has no review role
        assert admin.get(f"/v1/leads/{lead_id}").status_code == 403
    reviewer = make_key("rek-reviewer", ["review"])
    with httpx.Client(base_url=live_server, headers=_bearer(reviewer), timeout=60) as api:
        lead = api.get(f"/v1/leads/{lead_id}").json()
    assert (lead["operation"], lead["source"]) == ("SearchFacesByImage", "rekognition")
    assert [c["candidate_id"] for c in lead["candidates"]] == [
        m["Face"]["FaceId"] for m in found["FaceMatches"]
    ]
