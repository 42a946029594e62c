"""One door: every route and CLI verb leaves exactly the ledger records it should.

The walk calls every Rekognition operation (boto3), every ``/v1`` route (httpx), every web page
and action (a signed-in browser session over httpx) and every CLI verb that touches data (in
process, on the live server's data directory), one after another, and compares the records each
call appended with ``EXPECTED``: one table, call → the ``(operation, outcome)`` of its records,
in order. Records whose ``phase`` is "intent" (written before a biometric change) are not
counted: the table lists outcomes. Coverage is checked too: a Rekognition operation, a ``/v1``
route, a web route or a CLI command without a row fails the test, so a new door cannot open
without its entry here.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from helpers.backends import BOTH_BACKENDS
from helpers.data import lfw_people

OK = "ok"
NOT_FOUND = "ResourceNotFoundException"
INVALID = "InvalidParameterException"
S3 = "InvalidS3ObjectException"
DENIED = "AccessDeniedException"
ARN = "arn:aws:rekognition:us-east-1:000000000000:collection/door"
KVS = "arn:aws:kinesisvideo:us-east-1:000000000000:stream/nowhere/1"
KDS = "arn:aws:kinesis:us-east-1:000000000000:stream/door-out"

# The collection page: the collection, its policy, a page of faces, a page of users.
COLLECTION_PAGE = [
    ("DescribeCollection", OK),
    ("DescribeCollection", OK),
    ("ListFaces", OK),
    ("ListUsers", OK),
]
# call → the records it must leave, in order. Biometric changes get an intent record first
# (not counted here); everything else one record. A few calls make two gateway calls.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    # -- the Rekognition API (every operation) --
    "rek CreateCollection": [("CreateCollection", OK)],
    "rek DescribeCollection": [("DescribeCollection", OK)],
    "rek ListCollections": [("ListCollections", OK)],
    "rek TagResource": [("TagResource", OK)],
    "rek ListTagsForResource": [("ListTagsForResource", OK)],
    "rek UntagResource": [("UntagResource", OK)],
    "rek IndexFaces": [("IndexFaces", OK)],
    "rek ListFaces": [("ListFaces", OK)],
    "rek SearchFaces": [("SearchFaces", OK)],
    "rek SearchFacesByImage": [("SearchFacesByImage", OK)],
    "rek DetectFaces": [("DetectFaces", OK)],
    "rek DetectLabels": [("DetectLabels", OK)],
    "rek DetectText": [("DetectText", OK)],
    "rek CompareFaces": [("CompareFaces", OK)],
    "rek CreateUser": [("CreateUser", OK)],
    "rek ListUsers": [("ListUsers", OK)],
    "rek AssociateFaces": [("AssociateFaces", OK)],
    "rek SearchUsers": [("SearchUsers", OK)],
    "rek SearchUsersByImage": [("SearchUsersByImage", OK)],
    "rek DisassociateFaces": [("DisassociateFaces", OK)],
    "rek DeleteUser": [("DeleteUser", OK)],
    "rek DeleteFaces": [("DeleteFaces", OK)],
    "rek StartFaceDetection": [("StartFaceDetection", S3)],
    "rek GetFaceDetection": [("GetFaceDetection", NOT_FOUND)],
    "rek StartFaceSearch": [("StartFaceSearch", S3)],
    "rek GetFaceSearch": [("GetFaceSearch", NOT_FOUND)],
    "rek StartPersonTracking": [("StartPersonTracking", S3)],
    "rek GetPersonTracking": [("GetPersonTracking", NOT_FOUND)],
    "rek StartLabelDetection": [("StartLabelDetection", S3)],
    "rek GetLabelDetection": [("GetLabelDetection", NOT_FOUND)],
    "rek CreateStreamProcessor": [("CreateStreamProcessor", NOT_FOUND)],  # no such source
    "rek DescribeStreamProcessor": [("DescribeStreamProcessor", NOT_FOUND)],
    "rek ListStreamProcessors": [("ListStreamProcessors", OK)],
    "rek UpdateStreamProcessor": [("DescribeStreamProcessor", NOT_FOUND)],
    "rek StartStreamProcessor": [("StartStreamProcessor", NOT_FOUND)],
    "rek StopStreamProcessor": [("StopStreamProcessor", NOT_FOUND)],
    "rek DeleteStreamProcessor": [("DeleteStreamProcessor", NOT_FOUND)],
    "rek DeleteCollection": [("DeleteCollection", OK)],
    "rek refused by the role (an auditor's search)": [("SearchFacesByImage", DENIED)],
    "rek refused by validation": [("ListFaces", INVALID)],
    "rek S3 image that cannot be read": [("DetectFaces", S3)],
    # -- /v1 (every route) --
    "POST /v1/detect": [("DetectFaces", OK)],
    "POST /v1/labels": [("DetectLabels", OK)],
    "POST /v1/text": [("DetectText", OK)],
    "POST /v1/compare": [("CompareFaces", OK)],
    "POST /v1/collections": [("CreateCollection", OK)],
    "GET /v1/collections": [("ListCollections", OK)],
    "GET /v1/collections/{collection_id}": [("DescribeCollection", OK)],
    "POST /v1/collections/{collection_id}/faces": [("IndexFaces", OK)],
    "GET /v1/collections/{collection_id}/faces": [("ListFaces", OK)],
    "POST /v1/collections/{collection_id}/search": [("SearchFacesByImage", OK)],
    "GET /v1/collections/{collection_id}/faces/{face_id}/matches": [("SearchFaces", OK)],
    # enrolled before any policy kept crops: the view is refused, and recorded
    "GET /v1/collections/{collection_id}/faces/{face_id}/crop": [("GetFaceCrop", NOT_FOUND)],
    "POST /v1/collections/{collection_id}/users": [("CreateUser", OK)],
    "GET /v1/collections/{collection_id}/users": [("ListUsers", OK)],
    "POST /v1/collections/{collection_id}/users/{user_id}/faces": [("AssociateFaces", OK)],
    "GET /v1/collections/{collection_id}/faces/{face_id}/user_matches": [("SearchUsers", OK)],
    "GET /v1/collections/{collection_id}/users/{user_id}/matches": [("SearchUsers", OK)],
    "POST /v1/collections/{collection_id}/users/search": [("SearchUsersByImage", OK)],
    "POST /v1/collections/{collection_id}/users/{user_id}/faces/delete": [
        ("DisassociateFaces", OK)
    ],
    "DELETE /v1/collections/{collection_id}/users/{user_id}": [("DeleteUser", OK)],
    "GET /v1/collections/{collection_id}/policy": [("DescribeCollection", OK)],
    "PUT /v1/collections/{collection_id}/policy": [("PutCollectionPolicy", OK)],
    "POST /v1/collections/{collection_id}/faces/delete": [("DeleteFaces", OK)],
    "DELETE /v1/collections/{collection_id}": [("DeleteCollection", OK)],
    "POST /v1/video/jobs": [("StartFaceDetection", INVALID)],  # no such file
    "GET /v1/video/jobs/{job_id}": [("GetFaceSearch", NOT_FOUND)],
    "POST /v1/stream-processors": [("CreateStreamProcessor", NOT_FOUND)],  # no collection
    "GET /v1/stream-processors": [("ListStreamProcessors", OK)],
    "GET /v1/stream-processors/{name}": [("DescribeStreamProcessor", NOT_FOUND)],
    "PATCH /v1/stream-processors/{name}": [("UpdateStreamProcessor", NOT_FOUND)],
    "DELETE /v1/stream-processors/{name}": [("DeleteStreamProcessor", NOT_FOUND)],
    "POST /v1/stream-processors/{name}/start": [("StartStreamProcessor", NOT_FOUND)],
    "POST /v1/stream-processors/{name}/stop": [("StopStreamProcessor", NOT_FOUND)],
    "GET /v1/stream-processors/{name}/events": [("GetStreamEvents", NOT_FOUND)],
    "GET /v1/leads": [("ListLeads", OK)],
    "GET /v1/leads/{lead_id}": [("GetLead", OK)],
    "GET /v1/leads/{lead_id}/probe-crop": [("GetLeadProbeCrop", NOT_FOUND)],
    "POST /v1/leads/{lead_id}/decisions": [("ReviewLead", OK)],
    "/v1 a searcher reviewing their own lead": [("ReviewLead", DENIED)],
    "/v1 refused by validation": [("ListFaces", INVALID)],
    "/v1 refused by the route": [("StartVideoJob", INVALID)],  # neither path nor s3_object
    # -- the web app (every route) --
    "GET /app/login": [],
    "POST /app/login": [],
    "GET /app": [],
    "GET /app/": [],
    "GET /app/search": [("ListCollections", OK)],
    "POST /app/search/faces": [("DetectFaces", OK)],
    "POST /app/search": [("ListCollections", OK), ("DetectFaces", OK), ("SearchFacesByImage", OK)],
    "GET /app/compare": [],
    "POST /app/compare": [("CompareFaces", OK)],
    "GET /app/collections": [("ListCollections", OK)],
    "POST /app/collections": [("CreateCollection", OK)],  # then a redirect
    "GET /app/collections/{collection_id}": COLLECTION_PAGE,
    "POST /app/collections/{collection_id}/enrol": [("IndexFaces", OK), *COLLECTION_PAGE],
    "POST /app/collections/{collection_id}/faces/delete": [("DeleteFaces", OK)],  # redirect
    # enrolled before any policy kept crops: no crop, and the view is recorded
    "GET /app/collections/{collection_id}/faces/{face_id}/crop": [("GetFaceCrop", NOT_FOUND)],
    "POST /app/collections/{collection_id}/users/delete": [
        ("DeleteUser", NOT_FOUND),
        *COLLECTION_PAGE,  # the page again, with the problem
    ],
    "POST /app/collections/{collection_id}/policy": [("PutCollectionPolicy", OK)],  # redirect
    "POST /app/collections/{collection_id}/delete": [
        ("DeleteCollection", OK),
        ("ListCollections", OK),  # the list page
    ],
    "GET /app/streams": [("ListStreamProcessors", OK)],
    "POST /app/streams/{name}/{action}": [("StartStreamProcessor", NOT_FOUND)],
    # starting is searching: refused (recorded) without purpose and case; the page lists again
    "POST /app/streams/{name}/{action} without a purpose": [
        ("StartStreamProcessor", DENIED),
        ("ListStreamProcessors", OK),
    ],
    "GET /app/streams/{name}/events": [("GetStreamEvents", NOT_FOUND)],
    "GET /app/streams/{name}/events without a purpose": [("GetStreamEvents", DENIED)],
    "GET /app/ledger": [("ReadLedger", OK)],
    "GET /app/ledger?verify=1": [("ReadLedger", OK), ("VerifyLedger", OK)],
    "GET /app/ledger/export": [("ExportLedger", OK)],
    "GET /app/review": [("ListLeads", OK)],
    "GET /app/leads/{lead_id}/probe-crop": [("GetLeadProbeCrop", NOT_FOUND)],
    # a decision on a lead that does not exist: refused, then the queue again
    "POST /app/review/{lead_id}": [("ReviewLead", NOT_FOUND), ("ListLeads", OK)],
    "POST /app/logout": [],
    # -- the CLI (every verb that touches data, keys or the ledger) --
    "cli collections create": [("CreateCollection", OK)],
    "cli collections describe": [("DescribeCollection", OK)],
    "cli collections list": [("ListCollections", OK)],
    "cli collections policy": [("DescribeCollection", OK), ("PutCollectionPolicy", OK)],
    # the collection, then its policy (does it keep face crops?), then what is enrolled already
    "cli index": [
        ("DescribeCollection", OK),
        ("DescribeCollection", OK),
        ("ListFaces", OK),
        ("IndexFaces", OK),
    ],
    "cli search": [("SearchFacesByImage", OK)],
    "cli detect": [("DetectFaces", OK)],
    "cli compare": [("CompareFaces", OK)],
    "cli labels": [("DetectLabels", OK)],
    "cli text": [("DetectText", OK)],
    "cli collections delete": [("DeleteCollection", OK)],
    "cli keys create": [("CreateKey", OK)],
    "cli keys list": [("ListKeys", OK)],
    "cli keys revoke": [("RevokeKey", OK)],
    # a job runs in the CLI's process: started, ended (not a video), its results read
    "cli video faces": [
        ("StartFaceDetection", OK),
        ("FaceDetectionJob", INVALID),
        ("GetFaceDetection", OK),
    ],
    "cli video persons": [
        ("StartPersonTracking", OK),
        ("PersonTrackingJob", INVALID),
        ("GetPersonTracking", OK),
    ],
    "cli video labels": [
        ("StartLabelDetection", OK),
        ("LabelDetectionJob", INVALID),
        ("GetLabelDetection", OK),
    ],
    "cli video search": [("StartFaceSearch", NOT_FOUND)],  # the collection is gone
    "cli video notification-key": [("GetNotificationKey", OK)],
    "cli stream create": [("CreateStreamProcessor", NOT_FOUND)],
    "cli stream list": [("ListStreamProcessors", OK)],
    "cli stream describe": [("DescribeStreamProcessor", NOT_FOUND)],
    "cli stream delete": [("DeleteStreamProcessor", NOT_FOUND)],
    "cli stream watch": [("GetStreamEvents", NOT_FOUND)],
    "cli audit verify": [("VerifyLedger", OK)],
    "cli audit tail": [("ReadLedger", OK)],
    "cli audit export": [("ExportLedger", OK)],
    "cli audit checkpoint": [("CheckpointLedger", OK)],
    "cli audit leads": [("ListLeads", OK)],
    "cli audit decide": [("ReviewLead", OK)],
    "cli audit probe-crop": [("GetLeadProbeCrop", NOT_FOUND)],
    "cli audit decisions": [("ListLeads", OK)],
    "cli audit rotate-key": [("RotateLedgerKey", OK)],
    "cli backup": [("CreateBackup", OK)],
    "cli restore": [],  # refused (the live ledger is newer than the backup): nothing changes
}
# CLI commands that touch no collection, key or ledger (models, evaluation, schema, serving).
CLI_WITHOUT_DATA = {
    "serve",
    "models list",
    "models verify",
    "eval lfw",
    "eval report",
    "eval search",  # the operator's own folders of photos, not a collection
    "db upgrade",
    "db current",
    "db vacuum",
}


def counted(ledger: Ledger, after_seq: int) -> tuple[int, list[tuple[str, str]]]:
    """The head seq and the ``(operation, outcome)`` of the outcome records after ``after_seq``."""
    head = after_seq
    out = []
    for entry in ledger.entries():
        head = max(head, entry.seq)
        if entry.seq <= after_seq or entry.event is None:
            continue
        if entry.payload.get("phase", "outcome") != "outcome":
            continue
        out.append((entry.event.operation, entry.event.outcome))
    return head, out


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> list[bytes]:
    people = lfw_people(data_dir, min_images=2, count=1)
    return [p.read_bytes() for p in next(iter(people.values()))[:2]]


class Walk:
    """Runs each call and collects the records it left."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.head, _ = counted(ledger, 0)
        self.got: dict[str, list[tuple[str, str]]] = {}

    def __call__(self, name: str, call: Callable[[], Any]) -> Any:
        assert name in EXPECTED, f"no row in EXPECTED for {name!r}"
        try:
            value = call()
        except ClientError as exc:
            value = exc
        self.head, self.got[name] = counted(self.ledger, self.head)
        return value


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


@pytest.fixture
def cli_env(
    live_server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    from faceledger.cli.main import main

    monkeypatch.setenv("FACELEDGER_DATA_DIR", str(live_server_settings.data_dir))
    monkeypatch.setenv("FACELEDGER_DEFAULT_THRESHOLD_FLOOR", "80")
    if live_server_settings.database_url:  # the PostgreSQL re-run
        monkeypatch.setenv("FACELEDGER_DATABASE_URL", live_server_settings.database_url)

    def run(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        with pytest.raises(SystemExit) as stopped, _stdout(out):
            main(list(args))
        code = stopped.value.code
        return (code if isinstance(code, int) else 1), out.getvalue()

    return run


class _stdout:
    def __init__(self, out: io.StringIO) -> None:
        self.out = out

    def __enter__(self) -> None:
        import contextlib

        self._cm = contextlib.redirect_stdout(self.out)
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


@BOTH_BACKENDS
def test_every_route_and_verb_leaves_exactly_its_records(
    live_server: str,
    api_key: tuple[str, str],
    make_key: Callable[[str, list[str]], tuple[str, str]],
    live_server_settings: Settings,
    cli_env: Callable[..., tuple[int, str]],
    photos: list[bytes],
    tmp_path: Path,
) -> None:
    with Ledger.from_settings(live_server_settings) as ledger:
        walk = Walk(ledger)
        _walk_rekognition(walk, live_server, api_key, make_key, photos)
        _walk_native(walk, live_server, api_key, photos)
        _walk_leads(walk, live_server, make_key)
        _walk_web(walk, live_server, api_key, make_key, photos)
        _walk_cli(walk, cli_env, photos, tmp_path)
    wrong = [
        f"{name}: expected {EXPECTED[name]}, got {got}"
        for name, got in walk.got.items()
        if got != EXPECTED[name]
    ]
    assert wrong == [], "\n".join(wrong)
    assert set(walk.got) == set(EXPECTED), set(EXPECTED) - set(walk.got)
    _check_coverage()


def _check_coverage() -> None:
    """Every Rekognition operation, /v1 route, web route and CLI command has a row."""
    import typer.main

    from faceledger.api.native import collections, leads, routes, video
    from faceledger.api.rekognition.router import IMPLEMENTED
    from faceledger.api.web import account, ledger, manage, review, search, streams
    from faceledger.cli.main import app

    rows = set(EXPECTED)
    assert {f"rek {op}" for op in IMPLEMENTED} <= rows
    for module in (routes, collections, video, leads):
        for route in module.router.routes:
            for method in route.methods:  # type: ignore[attr-defined]
                assert f"{method} {route.path}" in rows, route.path  # type: ignore[attr-defined]
    for module in (account, search, manage, streams, ledger, review):
        for route in module.router.routes:
            for method in route.methods:  # type: ignore[attr-defined]
                path = "/app" + route.path  # type: ignore[attr-defined]
                assert f"{method} {path}" in rows, path
    group = typer.main.get_group(app)
    commands: set[str] = set()
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        commands |= {f"{name} {s}" for s in sub} if sub else {name}
    assert commands == {r.removeprefix("cli ") for r in rows if r.startswith("cli ")} | (
        CLI_WITHOUT_DATA
    )


def _rekognition(url: str, key: tuple[str, str]) -> Any:
    client = boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )

    def why(request: Any, **_: Any) -> None:
        request.headers["X-FaceLedger-Purpose"] = "one-door walk"
        request.headers["X-FaceLedger-Case"] = "DOOR-1"

    client.meta.events.register("before-sign.rekognition.*", why)
    return client


def _walk_rekognition(
    walk: Walk,
    url: str,
    key: tuple[str, str],
    make_key: Callable[[str, list[str]], tuple[str, str]],
    photos: list[bytes],
) -> None:
    rek = _rekognition(url, key)
    a, b = ({"Bytes": p} for p in photos)
    walk("rek CreateCollection", lambda: rek.create_collection(CollectionId="door"))
    walk("rek DescribeCollection", lambda: rek.describe_collection(CollectionId="door"))
    walk("rek ListCollections", lambda: rek.list_collections())
    walk("rek TagResource", lambda: rek.tag_resource(ResourceArn=ARN, Tags={"k": "v"}))
    walk("rek ListTagsForResource", lambda: rek.list_tags_for_resource(ResourceArn=ARN))
    walk("rek UntagResource", lambda: rek.untag_resource(ResourceArn=ARN, TagKeys=["k"]))
    indexed = walk("rek IndexFaces", lambda: rek.index_faces(CollectionId="door", Image=a))
    face = indexed["FaceRecords"][0]["Face"]["FaceId"]
    walk("rek ListFaces", lambda: rek.list_faces(CollectionId="door"))
    walk("rek SearchFaces", lambda: rek.search_faces(CollectionId="door", FaceId=face))
    walk(
        "rek SearchFacesByImage",
        lambda: rek.search_faces_by_image(CollectionId="door", Image=b),
    )
    walk("rek DetectFaces", lambda: rek.detect_faces(Image=a))
    walk("rek DetectLabels", lambda: rek.detect_labels(Image=a))
    walk("rek DetectText", lambda: rek.detect_text(Image=a))
    walk("rek CompareFaces", lambda: rek.compare_faces(SourceImage=a, TargetImage=b))
    walk("rek CreateUser", lambda: rek.create_user(CollectionId="door", UserId="u1"))
    walk("rek ListUsers", lambda: rek.list_users(CollectionId="door"))
    walk(
        "rek AssociateFaces",
        lambda: rek.associate_faces(CollectionId="door", UserId="u1", FaceIds=[face]),
    )
    walk("rek SearchUsers", lambda: rek.search_users(CollectionId="door", UserId="u1"))
    walk(
        "rek SearchUsersByImage",
        lambda: rek.search_users_by_image(CollectionId="door", Image=b),
    )
    walk(
        "rek DisassociateFaces",
        lambda: rek.disassociate_faces(CollectionId="door", UserId="u1", FaceIds=[face]),
    )
    walk("rek DeleteUser", lambda: rek.delete_user(CollectionId="door", UserId="u1"))
    walk("rek DeleteFaces", lambda: rek.delete_faces(CollectionId="door", FaceIds=[face]))
    video = {"S3Object": {"Bucket": "videos", "Name": "no-such.mp4"}}
    walk("rek StartFaceDetection", lambda: rek.start_face_detection(Video=video))
    walk("rek GetFaceDetection", lambda: rek.get_face_detection(JobId="nosuchjob"))
    walk(
        "rek StartFaceSearch",
        lambda: rek.start_face_search(Video=video, CollectionId="door"),
    )
    walk("rek GetFaceSearch", lambda: rek.get_face_search(JobId="nosuchjob"))
    walk("rek StartPersonTracking", lambda: rek.start_person_tracking(Video=video))
    walk("rek GetPersonTracking", lambda: rek.get_person_tracking(JobId="nosuchjob"))
    walk("rek StartLabelDetection", lambda: rek.start_label_detection(Video=video))
    walk("rek GetLabelDetection", lambda: rek.get_label_detection(JobId="nosuchjob"))
    walk(
        "rek CreateStreamProcessor",
        lambda: rek.create_stream_processor(
            Name="door-sp",
            Input={"KinesisVideoStream": {"Arn": KVS}},
            Output={"KinesisDataStream": {"Arn": KDS}},
            RoleArn="arn:aws:iam::000000000000:role/r",
            Settings={"FaceSearch": {"CollectionId": "door"}},
        ),
    )
    walk("rek DescribeStreamProcessor", lambda: rek.describe_stream_processor(Name="door-sp"))
    walk("rek ListStreamProcessors", lambda: rek.list_stream_processors())
    walk(
        "rek UpdateStreamProcessor",
        lambda: rek.update_stream_processor(Name="door-sp", ParametersToDelete=[]),
    )
    walk("rek StartStreamProcessor", lambda: rek.start_stream_processor(Name="door-sp"))
    walk("rek StopStreamProcessor", lambda: rek.stop_stream_processor(Name="door-sp"))
    walk("rek DeleteStreamProcessor", lambda: rek.delete_stream_processor(Name="door-sp"))
    walk("rek DeleteCollection", lambda: rek.delete_collection(CollectionId="door"))
    auditor = _rekognition(url, make_key("door-auditor", ["audit"]))
    walk(
        "rek refused by the role (an auditor's search)",
        lambda: auditor.search_faces_by_image(CollectionId="door", Image=b),
    )
    walk("rek refused by validation", lambda: rek.list_faces(CollectionId="bad id!"))
    walk(
        "rek S3 image that cannot be read",
        lambda: rek.detect_faces(Image={"S3Object": {"Bucket": "videos", "Name": "none.jpg"}}),
    )


def _walk_native(walk: Walk, url: str, key: tuple[str, str], photos: list[bytes]) -> None:
    headers = {
        "Authorization": f"Bearer {key[0]}:{key[1]}",
        "X-FaceLedger-Purpose": "one-door walk",
        "X-FaceLedger-Case": "DOOR-2",
    }
    a, b = photos
    c = "/v1/collections/door2"
    with httpx.Client(base_url=url, headers=headers, timeout=120) as api:
        walk("POST /v1/detect", lambda: api.post("/v1/detect", files={"image": a}))
        walk("POST /v1/labels", lambda: api.post("/v1/labels", files={"image": a}))
        walk("POST /v1/text", lambda: api.post("/v1/text", files={"image": a}))
        walk("POST /v1/compare", lambda: api.post("/v1/compare", files={"source": a, "target": b}))
        walk(
            "POST /v1/collections",
            lambda: api.post("/v1/collections", json={"collection_id": "door2"}),
        )
        walk("GET /v1/collections", lambda: api.get("/v1/collections"))
        walk("GET /v1/collections/{collection_id}", lambda: api.get(c))
        indexed = walk(
            "POST /v1/collections/{collection_id}/faces",
            lambda: api.post(f"{c}/faces", files={"image": a}),
        ).json()
        face = indexed["faces"][0]["face_id"]
        walk("GET /v1/collections/{collection_id}/faces", lambda: api.get(f"{c}/faces"))
        walk(
            "POST /v1/collections/{collection_id}/search",
            lambda: api.post(f"{c}/search", files={"image": b}),
        )
        walk(
            "GET /v1/collections/{collection_id}/faces/{face_id}/matches",
            lambda: api.get(f"{c}/faces/{face}/matches"),
        )
        walk(
            "GET /v1/collections/{collection_id}/faces/{face_id}/crop",
            lambda: api.get(f"{c}/faces/{face}/crop"),
        )
        walk(
            "POST /v1/collections/{collection_id}/users",
            lambda: api.post(f"{c}/users", json={"user_id": "u2"}),
        )
        walk("GET /v1/collections/{collection_id}/users", lambda: api.get(f"{c}/users"))
        walk(
            "POST /v1/collections/{collection_id}/users/{user_id}/faces",
            lambda: api.post(f"{c}/users/u2/faces", json={"face_ids": [face]}),
        )
        walk(
            "GET /v1/collections/{collection_id}/faces/{face_id}/user_matches",
            lambda: api.get(f"{c}/faces/{face}/user_matches"),
        )
        walk(
            "GET /v1/collections/{collection_id}/users/{user_id}/matches",
            lambda: api.get(f"{c}/users/u2/matches"),
        )
        walk(
            "POST /v1/collections/{collection_id}/users/search",
            lambda: api.post(f"{c}/users/search", files={"image": b}),
        )
        walk(
            "POST /v1/collections/{collection_id}/users/{user_id}/faces/delete",
            lambda: api.post(f"{c}/users/u2/faces/delete", json={"face_ids": [face]}),
        )
        walk(
            "DELETE /v1/collections/{collection_id}/users/{user_id}",
            lambda: api.delete(f"{c}/users/u2"),
        )
        walk("GET /v1/collections/{collection_id}/policy", lambda: api.get(f"{c}/policy"))
        walk(
            "PUT /v1/collections/{collection_id}/policy",
            lambda: api.put(f"{c}/policy", json={"require_purpose": False, "threshold_floor": 80}),
        )
        walk(
            "POST /v1/collections/{collection_id}/faces/delete",
            lambda: api.post(f"{c}/faces/delete", json={"face_ids": [face]}),
        )
        walk("DELETE /v1/collections/{collection_id}", lambda: api.delete(c))
        walk(
            "POST /v1/video/jobs",
            lambda: api.post("/v1/video/jobs", json={"kind": "faces", "path": "no-such.mp4"}),
        )
        walk("GET /v1/video/jobs/{job_id}", lambda: api.get("/v1/video/jobs/nosuchjob"))
        walk(
            "POST /v1/stream-processors",
            lambda: api.post(
                "/v1/stream-processors",
                json={
                    "name": "door-sp",
                    "source": "rtsp://127.0.0.1:9/x",
                    "collection_id": "door2",
                },
            ),
        )
        walk("GET /v1/stream-processors", lambda: api.get("/v1/stream-processors"))
        walk("GET /v1/stream-processors/{name}", lambda: api.get("/v1/stream-processors/door-sp"))
        walk(
            "PATCH /v1/stream-processors/{name}",
            lambda: api.patch("/v1/stream-processors/door-sp", json={"threshold": 90}),
        )
        walk(
            "DELETE /v1/stream-processors/{name}",
            lambda: api.delete("/v1/stream-processors/door-sp"),
        )
        walk(
            "POST /v1/stream-processors/{name}/start",
            lambda: api.post("/v1/stream-processors/door-sp/start"),
        )
        walk(
            "POST /v1/stream-processors/{name}/stop",
            lambda: api.post("/v1/stream-processors/door-sp/stop"),
        )
        walk(
            "GET /v1/stream-processors/{name}/events",
            lambda: api.get("/v1/stream-processors/door-sp/events"),
        )
        walk("/v1 refused by validation", lambda: api.get(f"{c}/faces?max_results=0"))
        walk("/v1 refused by the route", lambda: api.post("/v1/video/jobs", json={"kind": "faces"}))


def _walk_leads(
    walk: Walk,
    url: str,
    make_key: Callable[[str, list[str]], tuple[str, str]],
) -> None:
    """The lead routes, on the leads the /v1 walk's searches made (collection door2)."""
    reviewer = make_key("door-reviewer", ["review"])
    with httpx.Client(base_url=url, headers=_bearer(reviewer), timeout=60) as api:
        listed = walk(
            "GET /v1/leads",
            lambda: api.get("/v1/leads", params={"state": "open", "collection_id": "door2"}),
        ).json()
        lead = listed["leads"][0]
        path = f"/v1/leads/{lead['lead_id']}"
        walk("GET /v1/leads/{lead_id}", lambda: api.get(path))
        walk("GET /v1/leads/{lead_id}/probe-crop", lambda: api.get(f"{path}/probe-crop"))
        decision = {
            "candidate_id": lead["candidates"][0]["candidate_id"],
            "decision": "rejected",
            "note": "not the same person",
        }
        walk(
            "POST /v1/leads/{lead_id}/decisions",
            lambda: api.post(f"{path}/decisions", json=decision),
        )
    searcher = make_key("test-admin", ["review"])  # the principal who searched
    with httpx.Client(base_url=url, headers=_bearer(searcher), timeout=60) as api:
        walk(
            "/v1 a searcher reviewing their own lead",
            lambda: api.post(f"{path}/decisions", json=decision),
        )


def _bearer(key: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key[0]}:{key[1]}"}


def _walk_web(
    walk: Walk,
    url: str,
    key: tuple[str, str],
    make_key: Callable[[str, list[str]], tuple[str, str]],
    photos: list[bytes],
) -> None:
    a, b = photos
    c = "/app/collections/door3"
    with httpx.Client(base_url=url, timeout=120) as web:
        form = walk("GET /app/login", lambda: web.get("/app/login"))
        walk(
            "POST /app/login",
            lambda: web.post(
                "/app/login",
                data={"key_id": key[0], "secret": key[1], "csrf_token": _token(form.text)},
            ),
        )
        walk("GET /app", lambda: web.get("/app"))
        walk("GET /app/", lambda: web.get("/app/"))
        walk("GET /app/search", lambda: web.get("/app/search"))
        token = _token(walk("GET /app/compare", lambda: web.get("/app/compare")).text)
        why = {"csrf_token": token, "purpose": "one-door walk", "case_reference": "DOOR-3"}
        walk(
            "POST /app/search/faces",
            lambda: web.post("/app/search/faces", data=why, files={"image": a}),
        )
        walk(
            "POST /app/compare",
            lambda: web.post(
                "/app/compare", data={"csrf_token": token}, files={"source": a, "target": b}
            ),
        )
        walk("GET /app/collections", lambda: web.get("/app/collections"))
        walk(
            "POST /app/collections",
            lambda: web.post(
                "/app/collections", data={"csrf_token": token, "collection_id": "door3"}
            ),
        )
        walk(
            "POST /app/collections/{collection_id}/enrol",
            lambda: web.post(
                f"{c}/enrol", data={"csrf_token": token}, files={"images": ("a.jpg", a)}
            ),
        )
        walk(
            "POST /app/search",
            lambda: web.post(
                "/app/search", data={**why, "collection": "door3"}, files={"image": b}
            ),
        )
        page = walk("GET /app/collections/{collection_id}", lambda: web.get(c)).text
        face = re.search(r'name="face_id" value="([^"]+)"', page)
        assert face is not None, page[:500]
        walk(
            "GET /app/collections/{collection_id}/faces/{face_id}/crop",
            lambda: web.get(f"{c}/faces/{face.group(1)}/crop"),
        )
        walk(
            "POST /app/collections/{collection_id}/faces/delete",
            lambda: web.post(
                f"{c}/faces/delete", data={"csrf_token": token, "face_id": face.group(1)}
            ),
        )
        walk(
            "POST /app/collections/{collection_id}/users/delete",
            lambda: web.post(f"{c}/users/delete", data={"csrf_token": token, "user_id": "nobody"}),
        )
        walk(
            "POST /app/collections/{collection_id}/policy",
            lambda: web.post(f"{c}/policy", data={"csrf_token": token, "threshold_floor": "80"}),
        )
        walk(
            "POST /app/collections/{collection_id}/delete",
            lambda: web.post(f"{c}/delete", data={"csrf_token": token, "confirm": "door3"}),
        )
        walk("GET /app/streams", lambda: web.get("/app/streams"))
        walk(
            "POST /app/streams/{name}/{action}",
            lambda: web.post(
                "/app/streams/x/start",
                data={"csrf_token": token, "purpose": "p", "case_reference": "c"},
            ),
        )
        walk(
            "POST /app/streams/{name}/{action} without a purpose",
            lambda: web.post("/app/streams/x/start", data={"csrf_token": token}),
        )
        walk(
            "GET /app/streams/{name}/events",
            lambda: _sse(web, "/app/streams/x/events?purpose=p&case_reference=c"),
        )
        walk(
            "GET /app/streams/{name}/events without a purpose",
            lambda: web.get("/app/streams/x/events"),
        )
        walk("POST /app/logout", lambda: web.post("/app/logout", data={"csrf_token": token}))
    auditor = make_key("door-web-auditor", ["audit"])
    with httpx.Client(base_url=url, timeout=120) as web:
        form = web.get("/app/login")
        web.post(
            "/app/login",
            data={"key_id": auditor[0], "secret": auditor[1], "csrf_token": _token(form.text)},
        )
        walk("GET /app/ledger", lambda: web.get("/app/ledger?operation=CreateCollection"))
        walk("GET /app/ledger?verify=1", lambda: web.get("/app/ledger?verify=1"))
        walk("GET /app/ledger/export", lambda: web.get("/app/ledger/export?principal=nobody"))
    reviewer = make_key("door-web-reviewer", ["review"])
    with httpx.Client(base_url=url, timeout=120) as web:
        form = web.get("/app/login")
        web.post(
            "/app/login",
            data={"key_id": reviewer[0], "secret": reviewer[1], "csrf_token": _token(form.text)},
        )
        page = walk("GET /app/review", lambda: web.get("/app/review"))
        walk(
            "GET /app/leads/{lead_id}/probe-crop",
            lambda: web.get("/app/leads/00000000-0000-4000-8000-00000000beef/probe-crop"),
        )
        decision = {
            "csrf_token": _token(page.text),
            "candidate_id": "00000000-0000-4000-8000-000000000000",
            "decision": "rejected",
            "note": "walk",
        }
        walk(
            "POST /app/review/{lead_id}",
            lambda: web.post("/app/review/00000000-0000-4000-8000-00000000beef", data=decision),
        )


def _sse(client: httpx.Client, path: str) -> None:
    """Read an event stream to its end: for a missing processor, its first line, then the
    problem event, sent once the refusal is on the record (leaving after the first bytes
    raced that record on a busy machine)."""
    try:
        with client.stream("GET", path) as events:
            for _ in events.iter_bytes():
                pass
    except httpx.HTTPError:
        pass


def _walk_cli(
    walk: Walk, cli: Callable[..., tuple[int, str]], photos: list[bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "enrol"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photos[0])
    probe = tmp_path / "b.jpg"
    probe.write_bytes(photos[1])
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not a video")
    walk("cli collections create", lambda: cli("collections", "create", "door4"))
    walk("cli collections describe", lambda: cli("collections", "describe", "door4"))
    walk("cli collections list", lambda: cli("collections", "list"))
    walk("cli collections policy", lambda: cli("collections", "policy", "door4", "--floor", "80"))
    walk("cli index", lambda: cli("index", str(folder), "--collection", "door4"))
    walk("cli search", lambda: cli("search", str(probe), "--collection", "door4", "--json"))
    walk("cli detect", lambda: cli("detect", str(probe)))
    walk("cli compare", lambda: cli("compare", str(folder / "a.jpg"), str(probe)))
    walk("cli labels", lambda: cli("labels", str(probe)))
    walk("cli text", lambda: cli("text", str(probe)))
    walk("cli collections delete", lambda: cli("collections", "delete", "door4"))
    created = walk(
        "cli keys create",
        lambda: cli("keys", "create", "--principal", "door-cli", "--role", "search", "--json"),
    )
    walk("cli keys list", lambda: cli("keys", "list", "--json"))
    key_id = json.loads(created[1])["key_id"]
    walk("cli keys revoke", lambda: cli("keys", "revoke", key_id))
    walk("cli video faces", lambda: cli("video", "faces", str(clip)))
    walk("cli video persons", lambda: cli("video", "persons", str(clip)))
    walk("cli video labels", lambda: cli("video", "labels", str(clip)))
    walk("cli video search", lambda: cli("video", "search", str(clip), "--collection", "door4"))
    walk("cli video notification-key", lambda: cli("video", "notification-key", "--json"))
    walk(
        "cli stream create",
        lambda: cli(
            "stream", "create", "door-sp", "--source", "rtsp://127.0.0.1:9/x", "-c", "door4"
        ),
    )
    walk("cli stream list", lambda: cli("stream", "list"))
    walk("cli stream describe", lambda: cli("stream", "describe", "door-sp"))
    walk("cli stream delete", lambda: cli("stream", "delete", "door-sp"))
    walk(
        "cli stream watch",
        lambda: cli("stream", "watch", "door-sp", "--purpose", "p", "--case", "c"),
    )
    walk("cli audit verify", lambda: cli("audit", "verify"))
    walk("cli audit tail", lambda: cli("audit", "tail", "--json"))
    walk("cli audit export", lambda: cli("audit", "export", "--principal", "nobody"))
    walk("cli audit checkpoint", lambda: cli("audit", "checkpoint"))
    _, listed = walk("cli audit leads", lambda: cli("audit", "leads", "-c", "door2", "--json"))
    lead = json.loads(listed)[0]  # made by the /v1 walk's key, so the local operator may decide
    candidate = lead["candidates"][0]["candidate_id"]
    walk(
        "cli audit decide",
        lambda: cli(
            "audit",
            "decide",
            lead["lead_id"],
            candidate,
            "--decision",
            "inconclusive",
            "--note",
            "one-door walk",
        ),
    )
    walk("cli audit decisions", lambda: cli("audit", "decisions", "--json"))
    crop = str(tmp_path / "probe.jpg")  # door2 keeps no crops: no searched face
    walk("cli audit probe-crop", lambda: cli("audit", "probe-crop", lead["lead_id"], "-o", crop))
    walk("cli backup", lambda: cli("backup", str(tmp_path / "backup")))
    walk("cli restore", lambda: cli("restore", str(tmp_path / "backup")))
    walk("cli audit rotate-key", lambda: cli("audit", "rotate-key"))  # the server follows it
