"""The native API is accountable: roles, collection policies and the audit ledger (live server).

Every /v1 call goes through ``Gateway``: a refused call answers 403 and is ledgered, a search
leaves a record with the probe's SHA-256, the matched FaceIds and the effective threshold, and a
collection's policy (purpose required, threshold floor) governs every search. Records are read
back from the server's ledger file (``Ledger.from_settings(live_server_settings)``), filtered by
a collection or principal that only one test uses. Photos are LFW people, as in
``test_native_collections.py``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent
from helpers.data import lfw_people
from helpers.native import assert_error, enrol, index, ok, search

PURPOSE_HEADERS = {"X-FaceLedger-Purpose": "missing person report", "X-FaceLedger-Case": "MP-1"}


@pytest.fixture(scope="module")
def ledger(live_server: str, live_server_settings: Settings) -> Iterator[Ledger]:
    """The live server's ledger, opened for reading (the server keeps appending to it)."""
    with Ledger.from_settings(live_server_settings) as opened:
        yield opened


def events(ledger: Ledger, **filters: Any) -> list[AuditEvent]:
    """The ledgered events matching ``filters`` (``Ledger.entries``), oldest first; intent
    records (before each biometric change) are tested in test_intents.py."""
    return [
        e.event
        for e in ledger.entries(**filters)
        if e.event is not None and e.event.phase != "intent"
    ]


@pytest.fixture(scope="module")
def people(data_dir: Path) -> dict[str, list[Path]]:
    return lfw_people(data_dir, min_images=2, count=3)


@pytest.fixture
def collection(api: httpx.Client) -> Iterator[str]:
    collection_id = f"ledger-{uuid.uuid4().hex[:12]}"
    ok(api.post("/v1/collections", json={"collection_id": collection_id}), 201)
    yield collection_id
    api.delete(f"/v1/collections/{collection_id}")


def put_policy(api: httpx.Client, collection: str, **policy: Any) -> dict[str, Any]:
    body: dict[str, Any] = ok(api.put(f"/v1/collections/{collection}/policy", json=policy))
    return body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- roles ------------------------------------------------------------------------------------


def test_a_refused_call_is_403_and_ledgered_before_any_data_is_touched(
    live_server: str,
    make_key: Callable[[str, list[str]], tuple[str, str]],
    ledger: Ledger,
    people: dict[str, list[Path]],
) -> None:
    principal = f"searcher-{uuid.uuid4().hex[:8]}"
    key_id, secret = make_key(principal, ["search"])
    photo = next(iter(people.values()))[0].read_bytes()
    missing = f"no-such-{uuid.uuid4().hex[:8]}"  # a 403, not a ResourceNotFoundException
    with httpx.Client(
        base_url=live_server, headers={"Authorization": f"Bearer {key_id}:{secret}"}, timeout=60
    ) as searcher:
        denied = index(searcher, missing, photo)
    error = assert_error(denied, 403, "AccessDeniedException")
    assert "IndexFaces" in error["message"] and principal in error["message"]

    [record] = events(ledger, principal=principal)
    assert record.operation == "IndexFaces" and record.outcome == "AccessDeniedException"
    assert (record.source, record.key_id, record.roles) == ("native", key_id, ("search",))
    assert record.collection_id == missing
    assert record.probe_sha256 == (sha256(photo),)
    assert uuid.UUID(record.request_id)


def test_put_policy_needs_the_admin_role(
    live_server: str,
    make_key: Callable[[str, list[str]], tuple[str, str]],
    ledger: Ledger,
    collection: str,
) -> None:
    principal = f"enroller-{uuid.uuid4().hex[:8]}"
    key_id, secret = make_key(principal, ["enrol", "search"])
    with httpx.Client(
        base_url=live_server, headers={"Authorization": f"Bearer {key_id}:{secret}"}, timeout=60
    ) as client:
        shown = ok(client.get(f"/v1/collections/{collection}/policy"))  # DescribeCollection
        refused = client.put(
            f"/v1/collections/{collection}/policy",
            json={"require_purpose": False, "threshold_floor": 0},
        )
    assert shown["threshold_floor"] == 80  # the server's default: this collection has none
    error = assert_error(refused, 403, "AccessDeniedException")
    assert "PutCollectionPolicy" in error["message"]
    outcomes = [(e.operation, e.outcome) for e in events(ledger, principal=principal)]
    assert outcomes == [
        ("DescribeCollection", "ok"),
        ("PutCollectionPolicy", "AccessDeniedException"),
    ]


# -- policies ---------------------------------------------------------------------------------


def test_policy_round_trip_and_validation(api: httpx.Client, collection: str) -> None:
    base = f"/v1/collections/{collection}/policy"
    default = ok(api.get(base))
    assert default == {
        "collection_id": collection,
        "require_purpose": False,
        "threshold_floor": 80.0,  # live_server_settings.default_threshold_floor
        "retention_days": None,
        "keep_face_crops": False,
    }
    stored = put_policy(
        api, collection, require_purpose=True, threshold_floor=90, retention_days=365
    )
    assert stored == {
        "collection_id": collection,
        "require_purpose": True,
        "threshold_floor": 90.0,
        "retention_days": 365,
        "keep_face_crops": False,
    }
    assert ok(api.get(base)) == stored
    for bad in (
        {"require_purpose": False, "threshold_floor": 101},
        {"require_purpose": False, "threshold_floor": 50, "retention_days": 0},
        {"threshold_floor": 50},
    ):
        assert_error(api.put(base, json=bad), 400, "InvalidParameterException")
    assert ok(api.get(base)) == stored
    missing = "/v1/collections/no-such-collection/policy"
    assert_error(api.get(missing), 400, "ResourceNotFoundException")
    policy = {"require_purpose": False, "threshold_floor": 0}
    assert_error(api.put(missing, json=policy), 400, "ResourceNotFoundException")


def test_a_search_leaves_its_probe_digest_matches_and_threshold(
    api: httpx.Client, ledger: Ledger, collection: str, people: dict[str, list[Path]]
) -> None:
    name = next(iter(people))
    face_id = enrol(api, collection, people[name][0], name)
    probe = people[name][1].read_bytes()
    found = ok(search(api, collection, probe, threshold=70))
    assert found["requested_threshold"] == 70 and found["threshold"] == 80  # the server's floor
    assert [m["face"]["face_id"] for m in found["matches"]] == [face_id]

    searches = events(ledger, collection_id=collection, operation="SearchFacesByImage")
    [record] = searches
    assert record.outcome == "ok" and record.principal == "test-admin"
    assert record.probe_sha256 == (sha256(probe),)
    assert record.result["threshold"] == 80 and record.result["requested_threshold"] == 70
    assert [m[0] for m in record.result["matches"]] == [face_id]
    assert record.result["matches"][0][1] == pytest.approx(
        found["matches"][0]["similarity"], abs=1e-3
    )
    [indexed] = events(ledger, collection_id=collection, operation="IndexFaces")
    assert indexed.result["indexed"] == [face_id]
    assert indexed.probe_sha256 == (sha256(people[name][0].read_bytes()),)


def test_a_collection_requiring_a_purpose_refuses_searches_without_one(
    api: httpx.Client, ledger: Ledger, collection: str, people: dict[str, list[Path]]
) -> None:
    name = next(iter(people))
    face_id = enrol(api, collection, people[name][0], name)
    put_policy(api, collection, require_purpose=True, threshold_floor=80)
    probe = people[name][1].read_bytes()

    for refused in (
        search(api, collection, probe),
        search(api, collection, probe, purpose="a purpose but no case"),
        api.get(f"/v1/collections/{collection}/faces/{face_id}/matches"),
    ):
        message = assert_error(refused, 403, "AccessDeniedException")["message"]
        assert "X-FaceLedger-Purpose" in message and "X-FaceLedger-Case" in message
        assert "purpose and case_reference" in message

    # the form fields, the headers, or both (the fields win); a GET search takes the query
    by_fields = search(api, collection, probe, purpose="identify a victim", case_reference="V-9")
    by_headers = api.post(
        f"/v1/collections/{collection}/search",
        files={"image": ("probe.jpg", probe, "image/jpeg")},
        headers=PURPOSE_HEADERS,
    )
    both = api.post(
        f"/v1/collections/{collection}/search",
        files={"image": ("probe.jpg", probe, "image/jpeg")},
        data={"case_reference": "MP-2"},
        headers=PURPOSE_HEADERS,
    )
    by_query = api.get(
        f"/v1/collections/{collection}/faces/{face_id}/matches",
        params={"purpose": "duplicate check", "case_reference": "D-1"},
    )
    for response in (by_fields, by_headers, both, by_query):
        ok(response)
    assert [m["face"]["face_id"] for m in by_fields.json()["matches"]] == [face_id]

    searches = [
        e
        for e in events(ledger, collection_id=collection)
        if e.operation in ("SearchFacesByImage", "SearchFaces")
    ]
    assert [(e.operation, e.outcome, e.purpose, e.case_reference) for e in searches] == [
        ("SearchFacesByImage", "AccessDeniedException", None, None),
        ("SearchFacesByImage", "AccessDeniedException", "a purpose but no case", None),
        ("SearchFaces", "AccessDeniedException", None, None),
        ("SearchFacesByImage", "ok", "identify a victim", "V-9"),
        ("SearchFacesByImage", "ok", "missing person report", "MP-1"),
        ("SearchFacesByImage", "ok", "missing person report", "MP-2"),
        ("SearchFaces", "ok", "duplicate check", "D-1"),
    ]
    assert all(e.probe_sha256 == (sha256(probe),) for e in searches[:2] + searches[3:6])
    # a purpose too long for the ledger is refused before anything runs
    too_long = search(api, collection, probe, purpose="x" * 257, case_reference="C")
    assert "purpose" in assert_error(too_long, 400, "InvalidParameterException")["message"]


def test_a_threshold_floor_raises_the_requested_threshold(
    api: httpx.Client, ledger: Ledger, collection: str, people: dict[str, list[Path]]
) -> None:
    for name, photos in people.items():
        enrol(api, collection, photos[0], name)
    probe = next(iter(people.values()))[1].read_bytes()
    put_policy(api, collection, require_purpose=False, threshold_floor=0)
    everyone = ok(search(api, collection, probe, threshold=0))
    assert any(m["similarity"] < 95 for m in everyone["matches"])  # the floor will matter

    put_policy(api, collection, require_purpose=False, threshold_floor=95)
    floored = ok(search(api, collection, probe, threshold=50))
    assert floored["threshold"] == 95 and floored["requested_threshold"] == 50
    assert all(m["similarity"] >= 95 for m in floored["matches"])
    expected = [m["face"]["face_id"] for m in everyone["matches"] if m["similarity"] >= 95]
    assert [m["face"]["face_id"] for m in floored["matches"]] == expected
    above = ok(search(api, collection, probe, threshold=99))  # a higher request stands
    assert above["threshold"] == above["requested_threshold"] == 99

    # users searches are floored too
    users = ok(
        api.post(
            f"/v1/collections/{collection}/users/search",
            files={"image": ("probe.jpg", probe, "image/jpeg")},
            data={"threshold": "10"},
        )
    )
    assert users["threshold"] == 95 and users["requested_threshold"] == 10

    records = events(ledger, collection_id=collection, operation="SearchFacesByImage")
    assert [(r.result["requested_threshold"], r.result["threshold"]) for r in records] == [
        (0, 0),
        (50, 95),
        (99, 99),
    ]


def test_a_request_failing_validation_is_ledgered_for_its_caller(
    live_server: str,
    make_key: Callable[[str, list[str]], tuple[str, str]],
    ledger: Ledger,
) -> None:
    principal = f"invalid-{uuid.uuid4().hex[:8]}"
    key_id, secret = make_key(principal, ["search", "enrol"])
    bearer = {"Authorization": f"Bearer {key_id}:{secret}", "X-FaceLedger-Purpose": "p"}
    with httpx.Client(base_url=live_server, headers=bearer, timeout=60) as client:
        assert_error(
            client.get("/v1/collections/col-a/faces?max_results=0"),
            400,
            "InvalidParameterException",
        )
        assert_error(
            client.post("/v1/collections/col-b/faces/delete", json={"x": 1}),
            400,
            "InvalidParameterException",
        )
        assert_error(client.post("/v1/detect"), 400, "InvalidParameterException")  # no image
        long_case = {"X-FaceLedger-Case": "c" * 300}  # over the header's limit: no caller built
        assert_error(
            client.get("/v1/collections/col-d", headers=long_case), 400, "InvalidParameterException"
        )
    with httpx.Client(base_url=live_server, timeout=60) as stranger:  # not authenticated
        assert_error(
            stranger.get("/v1/collections/col-c/faces?max_results=0"),
            401,
            "MissingAuthenticationTokenException",
        )
    mine = events(ledger, principal=principal)
    assert [(e.operation, e.outcome, e.collection_id) for e in mine] == [
        ("ListFaces", "InvalidParameterException", "col-a"),
        ("DeleteFaces", "InvalidParameterException", "col-b"),
        ("DetectFaces", "InvalidParameterException", None),
        ("DescribeCollection", "InvalidParameterException", "col-d"),
    ]
    assert all(e.source == "native" and e.purpose == "p" for e in mine)
    assert (mine[-1].case_reference or "").startswith("ccc")  # (cut to a bound by the ledger)
    assert "max_results" in mine[0].result["message"]
    assert events(ledger, collection_id="col-c") == []
