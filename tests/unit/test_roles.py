"""Every role × every gateway verb: allowed calls run, refused ones raise AccessDeniedException
and are ledgered, whatever surface calls them (all adapters go through ``Gateway``)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import AccessDeniedError, FaceLedgerError
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLE_OPERATIONS, ROLES, Principal
from faceledger.services.gateway import Gateway
from faceledger.services.video.jobs import JobRequest

FACE_ID = "00000000-0000-4000-8000-000000000000"


def _no_face_png() -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (160, 120), (90, 140, 200)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("roles")
    settings = Settings(data_dir=root / "data", ledger_key_file=root / "keys" / "ledger.key")
    service = Gateway(settings)
    yield service
    service.close()
    service.close_models()


def _verbs(image: bytes) -> dict[str, Callable[[Gateway, Caller], Any]]:
    """One call per operation, on a collection that exists ("c") or an unknown one."""
    return {
        "CreateCollection": lambda g, c: g.create_collection(c, f"new-{c.principal.name}"),
        "DescribeCollection": lambda g, c: g.describe_collection(c, "c"),
        "ListCollections": lambda g, c: g.list_collections(c),
        "DeleteCollection": lambda g, c: g.delete_collection(c, "no-such-collection"),
        "TagResource": lambda g, c: g.tag_collection(c, "c", {"k": "v"}),
        "UntagResource": lambda g, c: g.untag_collection(c, "c", ["k"]),
        "ListTagsForResource": lambda g, c: g.collection_tags(c, "c"),
        "PutCollectionPolicy": lambda g, c: g.put_policy(c, "c", CollectionPolicy()),
        "IndexFaces": lambda g, c: g.index_faces(c, "c", image),
        "GetFaceCrop": lambda g, c: g.get_face_crop(c, "c", FACE_ID),
        "GetLeadProbeCrop": lambda g, c: g.get_lead_probe_crop(c, FACE_ID),
        "ListFaces": lambda g, c: g.list_faces(c, "c"),
        "DeleteFaces": lambda g, c: g.delete_faces(c, "c", [FACE_ID]),
        "CreateUser": lambda g, c: g.create_user(c, "c", f"user-{c.principal.name}"),
        "ListUsers": lambda g, c: g.list_users(c, "c"),
        "DeleteUser": lambda g, c: g.delete_user(c, "c", "no-such-user"),
        "AssociateFaces": lambda g, c: g.associate_faces(c, "c", "u", [FACE_ID]),
        "DisassociateFaces": lambda g, c: g.disassociate_faces(c, "c", "u", [FACE_ID]),
        "DetectFaces": lambda g, c: g.detect_faces(c, image),
        "CompareFaces": lambda g, c: g.compare_faces(c, image, image),
        "DetectLabels": lambda g, c: g.detect_labels(c, image),
        "DetectText": lambda g, c: g.detect_text(c, image),
        "SearchFaces": lambda g, c: g.search_faces(c, "c", FACE_ID),
        "SearchFacesByImage": lambda g, c: g.search_faces_by_image(c, "c", image),
        "SearchUsers": lambda g, c: g.search_users(c, "c", user_id="u"),
        "SearchUsersByImage": lambda g, c: g.search_users_by_image(c, "c", image),
        "CreateKey": lambda g, c: g.create_key(c, f"made-by-{c.principal.name}", ["search"]),
        "ListKeys": lambda g, c: g.list_keys(c),
        "RevokeKey": lambda g, c: g.revoke_key(c, "FLAKAAAAAAAAAAAAAAAA"),
        "StartFaceDetection": lambda g, c: g.start_video_job(
            c, JobRequest("faces", {"path": "none.mp4"})
        ),
        "GetFaceDetection": lambda g, c: g.get_video_job(c, "faces", "no-such-job"),
        "StartFaceSearch": lambda g, c: g.start_video_job(
            c, JobRequest("search", {"path": "none.mp4"}, collection_id="c")
        ),
        "GetFaceSearch": lambda g, c: g.get_video_job(c, "search", "no-such-job"),
        "StartPersonTracking": lambda g, c: g.start_video_job(
            c, JobRequest("persons", {"path": "x.mp4"})
        ),
        "GetPersonTracking": lambda g, c: g.get_video_job(c, "persons", "no-such-job"),
        "StartLabelDetection": lambda g, c: g.start_video_job(
            c, JobRequest("labels", {"path": "x.mp4"})
        ),
        "GetLabelDetection": lambda g, c: g.get_video_job(c, "labels", "no-such-job"),
        "CreateStreamProcessor": lambda g, c: g.create_stream_processor(
            c, f"sp-{c.principal.name}", "rtsp://127.0.0.1:9/x", collection_id="c"
        ),
        "DescribeStreamProcessor": lambda g, c: g.describe_stream_processor(c, "no-such"),
        "ListStreamProcessors": lambda g, c: g.list_stream_processors(c),
        "UpdateStreamProcessor": lambda g, c: g.update_stream_processor(c, "no-such"),
        "DeleteStreamProcessor": lambda g, c: g.delete_stream_processor(c, "no-such"),
        "StartStreamProcessor": lambda g, c: g.start_stream_processor(c, "no-such"),
        "StopStreamProcessor": lambda g, c: g.stop_stream_processor(c, "no-such"),
        "GetStreamEvents": lambda g, c: g.stream_events(c, "no-such"),
        "ReadLedger": lambda g, c: g.read_ledger(c, limit=1),
        "VerifyLedger": lambda g, c: g.verify_ledger(c),
        "ExportLedger": lambda g, c: g.export_ledger(c, io.StringIO()),
        "CheckpointLedger": lambda g, c: g.checkpoint_ledger(c),
        "RotateLedgerKey": lambda g, c: g.rotate_ledger_key(c),
        "GetNotificationKey": lambda g, c: g.get_notification_key(c),
        "ListLeads": lambda g, c: g.list_leads(c),
        "GetLead": lambda g, c: g.get_lead(c, FACE_ID),
        "ReviewLead": lambda g, c: g.review_lead(c, FACE_ID, FACE_ID, decision="rejected"),
    }


def test_every_role_against_every_operation(gate: Gateway) -> None:
    root = Caller(Principal("root", ROLES, "ROOT"), source="cli", request_id="setup")
    gate.create_collection(root, "c")
    gate.create_user(root, "c", "u")
    verbs = _verbs(_no_face_png())
    operations = set().union(*ROLE_OPERATIONS.values())
    assert set(verbs) == operations, "a gateway operation without a row in this test"

    outcomes: dict[tuple[str, str], str] = {}
    for role in ROLES:
        caller = Caller(Principal(f"only-{role}", (role,), f"KEY-{role}"), "native", role)
        for operation, call in verbs.items():
            try:
                call(gate, caller)
                outcome = "ok"
            except AccessDeniedError:
                outcome = "denied"
            except FaceLedgerError as exc:  # allowed, then refused for a reason of its own
                outcome = exc.code
            outcomes[(role, operation)] = outcome
            allowed = operation in ROLE_OPERATIONS[role]
            assert (outcome != "denied") == allowed, (role, operation, outcome)

    # every refusal left a record with the caller and the outcome, and so did every call
    for role in ROLES:
        records = [e.event for e in gate._ledger.entries(principal=f"only-{role}")]
        got = {(r.operation, r.outcome) for r in records if r is not None}
        for operation in verbs:
            if outcomes[(role, operation)] == "denied":
                assert (operation, "AccessDeniedException") in got, (role, operation)
            else:
                assert any(op == operation for op, _ in got), (role, operation)
    # audit may call nothing but read the ledger and leads; admin may not search or enrol
    assert {op for (r, op), o in outcomes.items() if r == "audit" and o != "denied"} == {
        "ReadLedger",
        "VerifyLedger",
        "ExportLedger",
        "ListLeads",
        "GetLead",
    }
    assert outcomes[("admin", "SearchFacesByImage")] == "denied"
    assert outcomes[("search", "IndexFaces")] == "denied"
    assert outcomes[("enrol", "SearchFacesByImage")] == "denied"
    assert outcomes[("search", "SearchFacesByImage")] == "InvalidParameterException"  # no face


def test_a_denied_call_never_reads_its_data(gate: Any, tmp_path: Path) -> None:
    """The role is checked before the verb runs: an unknown collection still answers
    AccessDenied (not ResourceNotFound) to a caller without the role."""
    caller = Caller(Principal("audit-only", ("audit",), "K"), "rekognition", "r1")
    with pytest.raises(AccessDeniedError):
        gate.list_faces(caller, "does-not-exist")
