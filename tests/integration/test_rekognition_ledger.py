"""Accountability on the Rekognition API: purpose headers, floors, and ledger records.

boto3 callers send why they search with two headers, added by an event hook before signing
(so the signature covers them) — the recipe the README documents.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import Principal
from faceledger.services.gateway import Gateway


def _client(
    url: str, key: tuple[str, str], purpose: str | None = None, case: str | None = None
) -> Any:
    client = boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}),
    )
    if purpose is not None:

        def add_purpose(request: Any, **_: Any) -> None:
            request.headers["X-FaceLedger-Purpose"] = purpose
            if case is not None:
                request.headers["X-FaceLedger-Case"] = case

        client.meta.events.register("before-sign.rekognition.*", add_purpose)
    return client


def _records(settings: Settings, **filters: Any) -> list[Any]:
    ledger = Ledger.from_settings(settings)
    try:
        # Intent records (before each biometric change) are tested in test_intents.py.
        return [e for e in ledger.entries(**filters) if e.payload.get("phase") != "intent"]
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def person(data_dir: Path) -> list[bytes]:
    root = data_dir / "lfw-devtrain" / "images"
    folder = next(p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 3)
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:3]]


def _set_policy(settings: Settings, collection_id: str, policy: CollectionPolicy) -> None:
    admin = Caller(Principal("test-admin", ("admin",), "TEST"), source="cli", request_id="")
    gate = Gateway(settings)
    try:
        gate.put_policy(admin, collection_id, policy)
    finally:
        gate.close()


def test_search_is_ledgered_with_purpose_probe_digest_and_matches(
    live_server: str, api_key: tuple[str, str], live_server_settings: Settings, person: list[bytes]
) -> None:
    rek = _client(live_server, api_key, purpose="missing child report", case="CASE-2026-0042")
    rek.create_collection(CollectionId="ledgered-1")
    face_id = rek.index_faces(CollectionId="ledgered-1", Image={"Bytes": person[0]})["FaceRecords"][
        0
    ]["Face"]["FaceId"]
    found = rek.search_faces_by_image(
        CollectionId="ledgered-1", Image={"Bytes": person[1]}, FaceMatchThreshold=80
    )
    request_id = found["ResponseMetadata"]["RequestId"]
    headers = found["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-faceledger-effective-threshold"] == "80"
    # what a candidate means at this size: the body stays Rekognition's, headers say the rest
    assert headers["x-faceledger-face-count"] == "1"
    assert headers["x-faceledger-floor-source"] == "policy"  # the server pins 80
    assert 0.0 <= float(headers["x-faceledger-fpir"]) <= float(headers["x-faceledger-fpir-upper"])
    assert 0.0 < float(headers["x-faceledger-hit-rate"]) <= 1.0
    assert float(headers["x-faceledger-fmr"]) > 0
    assert "searches for someone not in this collection" in headers["x-faceledger-scale"]
    assert set(found) == {
        "SearchedFaceBoundingBox",
        "SearchedFaceConfidence",
        "FaceMatches",
        "FaceModelVersion",
        "ResponseMetadata",
    }

    records = [r for r in _records(live_server_settings, collection_id="ledgered-1")]
    search = next(r for r in records if r.event.request_id == request_id)
    assert search.event.operation == "SearchFacesByImage"
    assert search.event.outcome == "ok"
    assert search.event.principal == "test-admin" and search.event.key_id == api_key[0]
    assert search.event.purpose == "missing child report"
    assert search.event.case_reference == "CASE-2026-0042"
    assert search.event.source == "rekognition"
    assert search.event.probe_sha256 == (hashlib.sha256(person[1]).hexdigest(),)
    assert [m[0] for m in search.event.result["matches"]] == [face_id]
    assert search.event.result["threshold"] == 80
    assert search.event.result["scale"]["face_count"] == 1
    assert search.event.result["scale"]["fpir"] == pytest.approx(
        float(headers["x-faceledger-fpir"]), rel=1e-2
    )
    assert [r.event.operation for r in records][:3] == [
        "CreateCollection",
        "IndexFaces",
        "SearchFacesByImage",
    ]
    rek.delete_collection(CollectionId="ledgered-1")


def test_policy_requires_purpose_and_raises_the_floor(
    live_server: str, api_key: tuple[str, str], live_server_settings: Settings, person: list[bytes]
) -> None:
    plain = _client(live_server, api_key)
    plain.create_collection(CollectionId="policy-1")
    plain.index_faces(CollectionId="policy-1", Image={"Bytes": person[0]})
    _set_policy(
        live_server_settings,
        "policy-1",
        CollectionPolicy(require_purpose=True, threshold_floor=99.9),
    )
    with pytest.raises(ClientError) as err:
        plain.search_faces_by_image(CollectionId="policy-1", Image={"Bytes": person[1]})
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "X-FaceLedger-Purpose" in err.value.response["Error"]["Message"]
    refused = _records(
        live_server_settings, collection_id="policy-1", operation="SearchFacesByImage"
    )
    assert refused[-1].event.outcome == "AccessDeniedException"

    only_purpose = _client(live_server, api_key, purpose="test")
    with pytest.raises(ClientError):
        only_purpose.search_faces_by_image(CollectionId="policy-1", Image={"Bytes": person[1]})

    with_purpose = _client(live_server, api_key, purpose="test", case="C-1")
    found = with_purpose.search_faces_by_image(
        CollectionId="policy-1", Image={"Bytes": person[1]}, FaceMatchThreshold=10
    )
    headers = found["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-faceledger-effective-threshold"] == "99.9"
    assert all(m["Similarity"] >= 99.9 for m in found["FaceMatches"])
    last = _records(live_server_settings, collection_id="policy-1")[-1].event
    assert last.outcome == "ok"
    assert last.result["requested_threshold"] == 10 and last.result["threshold"] == 99.9
    plain.delete_collection(CollectionId="policy-1")


def test_denied_calls_are_ledgered(
    live_server: str, make_key: Any, live_server_settings: Settings, person: list[bytes]
) -> None:
    audit_key = make_key("auditor-x", ["audit"])
    client = _client(live_server, audit_key)
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.detect_faces(Image={"Bytes": person[0]})
    mine = _records(live_server_settings, principal="auditor-x")
    assert [(r.event.operation, r.event.outcome) for r in mine] == [
        ("DetectFaces", "AccessDeniedException")
    ]
    assert mine[0].event.key_id == audit_key[0]
    assert mine[0].event.probe_sha256 == ()  # refused before the image was even read


def test_refusals_before_any_verb_are_ledgered_with_the_principal_and_collection(
    live_server: str, make_key: Any, live_server_settings: Settings
) -> None:
    """Validation failures, unknown operations and role refusals, once the caller is
    authenticated, each leave one record naming the collection the request named."""
    enroller = _client(live_server, make_key("refused-enroller", ["enrol"]))
    with pytest.raises(ClientError) as err:
        enroller.list_faces(CollectionId="refused 1!")  # breaks the shape's pattern
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(enroller.exceptions.AccessDeniedException):
        enroller.delete_collection(CollectionId="refused-2")  # an admin's verb
    with pytest.raises(ClientError) as err:
        enroller.tag_resource(
            ResourceArn="arn:aws:rekognition:us-east-1:000000000000:collection/refused-3",
            Tags={"k": "v"},
        )
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as err:
        enroller.detect_moderation_labels(Image={"Bytes": b"x" * 100})
    assert err.value.response["Error"]["Code"] == "UnknownOperationException"
    records = [r.event for r in _records(live_server_settings, principal="refused-enroller")]
    assert [(r.operation, r.outcome, r.collection_id) for r in records] == [
        ("ListFaces", "InvalidParameterException", "refused 1!"),
        ("DeleteCollection", "AccessDeniedException", "refused-2"),
        ("TagResource", "AccessDeniedException", "refused-3"),
        ("DetectModerationLabels", "UnknownOperationException", None),
    ]
    assert "CollectionId" in records[0].result["message"]
    assert all(r.source == "rekognition" and r.request_id for r in records)


def test_an_unauthenticated_invalid_request_is_not_ledgered(
    live_server: str, live_server_settings: Settings
) -> None:
    stranger = _client(live_server, ("FLAKNOSUCHKEY0000000", "secret"))
    with pytest.raises(ClientError) as err:
        stranger.list_faces(CollectionId="refused-4", MaxResults=0)
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert _records(live_server_settings, collection_id="refused-4") == []


@pytest.mark.parametrize(
    ("body", "collection_id"),
    [
        ({"CollectionId": "c1", "MaxResults": 1}, "c1"),
        ({"ResourceArn": "arn:aws:rekognition:us-east-1:000000000000:collection/c2"}, "c2"),
        ({"Name": "sp", "Settings": {"FaceSearch": {"CollectionId": "c3"}}}, "c3"),
        ({"CollectionId": 7}, None),  # not a string: the shape check refuses it, no hint
        ({"Image": {}}, None),
        ([1, 2], None),
    ],
)
def test_the_collection_a_refused_request_names(body: Any, collection_id: str | None) -> None:
    from faceledger.api.rekognition.router import collection_hint

    assert collection_hint(body) == collection_id
