"""The Rekognition JSON API driven by boto3 against a real server (uvicorn on loopback).

Every response is parsed by botocore, and a ``before-parse`` hook also checks each raw JSON
response against the operation's output shape from botocore's service model (no member
botocore does not know, right JSON types), so a shape mistake fails here even where botocore
would silently drop it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers.backends import BOTH_BACKENDS, POSTGRES_ONLY, SQLITE_ONLY
from helpers.data import lfw_people
from helpers.rekognition import REGION, ShapeChecker, rekognition_client, wait_for_job


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checker() -> Iterator[ShapeChecker]:
    check = ShapeChecker()
    yield check
    assert not check.problems, "\n".join(check.problems)


@pytest.fixture(scope="module")
def rek(live_server: str, api_key: tuple[str, str], checker: ShapeChecker) -> Any:
    client = rekognition_client(live_server, *api_key)
    client.meta.events.register("before-parse.rekognition", checker)
    return client


@pytest.fixture(scope="module")
def raw_rek(live_server: str, api_key: tuple[str, str], checker: ShapeChecker) -> Any:
    """A client without client-side validation, to reach the server's own checks."""
    client = rekognition_client(live_server, *api_key, parameter_validation=False)
    client.meta.events.register("before-parse.rekognition", checker)
    return client


@pytest.fixture(scope="module")
def people(data_dir: Path) -> dict[str, list[bytes]]:
    """Four LFW people with at least three images each (bytes)."""
    return {n: [p.read_bytes() for p in imgs[:3]] for n, imgs in lfw_people(data_dir, 3, 4).items()}


def _code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def _no_face_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 160, 200)).save(buf, "JPEG")
    return buf.getvalue()


# -- collections ----------------------------------------------------------------------------
@BOTH_BACKENDS
def test_collection_lifecycle_and_paging(rek: Any) -> None:
    created = rek.create_collection(CollectionId="lifecycle-a", Tags={"team": "bookings"})
    assert created["StatusCode"] == 200
    assert created["CollectionArn"] == (
        f"arn:aws:rekognition:{REGION}:000000000000:collection/lifecycle-a"
    )
    assert created["FaceModelVersion"].startswith("yunet-sface")
    with pytest.raises(rek.exceptions.ResourceAlreadyExistsException):
        rek.create_collection(CollectionId="lifecycle-a")
    rek.create_collection(CollectionId="lifecycle-b")
    described = rek.describe_collection(CollectionId="lifecycle-a")
    assert described["FaceCount"] == 0 and described["UserCount"] == 0
    assert isinstance(described["CreationTimestamp"], dt.datetime)
    assert abs(described["CreationTimestamp"].timestamp() - dt.datetime.now().timestamp()) < 600
    assert described["CollectionARN"] == created["CollectionArn"]

    first = rek.list_collections(MaxResults=1)
    assert len(first["CollectionIds"]) == 1 and first["NextToken"]
    assert first["FaceModelVersions"] == [created["FaceModelVersion"]]
    ids = list(first["CollectionIds"])
    token = first.get("NextToken")
    while token:
        page = rek.list_collections(MaxResults=1, NextToken=token)
        ids += page["CollectionIds"]
        token = page.get("NextToken")
    assert {"lifecycle-a", "lifecycle-b"} <= set(ids)
    assert ids == sorted(ids)
    with pytest.raises(rek.exceptions.InvalidPaginationTokenException):
        rek.list_collections(NextToken=first["NextToken"][:-3] + "abc")
    # the paginator botocore ships works over our tokens
    paged = [
        cid
        for page in rek.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 1})
        for cid in page["CollectionIds"]
    ]
    assert paged == ids

    assert rek.list_tags_for_resource(ResourceArn=created["CollectionArn"])["Tags"] == {
        "team": "bookings"
    }
    rek.tag_resource(ResourceArn=created["CollectionArn"], Tags={"case": "2026-17", "x": "1"})
    rek.untag_resource(ResourceArn=created["CollectionArn"], TagKeys=["x"])
    tags = rek.list_tags_for_resource(ResourceArn=created["CollectionArn"])["Tags"]
    assert tags == {"team": "bookings", "case": "2026-17"}
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.list_tags_for_resource(
            ResourceArn=f"arn:aws:rekognition:{REGION}:000000000000:collection/none-such"
        )
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.tag_resource(ResourceArn="arn:aws:s3:::bucket-name-x", Tags={"a": "b"})

    assert rek.delete_collection(CollectionId="lifecycle-a")["StatusCode"] == 200
    assert rek.delete_collection(CollectionId="lifecycle-b")["StatusCode"] == 200
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.describe_collection(CollectionId="lifecycle-a")
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.delete_collection(CollectionId="lifecycle-a")


# -- faces and search ------------------------------------------------------------------------
def _check_box(box: dict[str, float]) -> None:
    assert set(box) == {"Width", "Height", "Left", "Top"}
    assert 0 < box["Width"] <= 1 and 0 < box["Height"] <= 1
    assert -0.2 < box["Left"] < 1 and -0.2 < box["Top"] < 1


@BOTH_BACKENDS
def test_index_list_search_delete(
    rek: Any, people: dict[str, list[bytes]], api: httpx.Client
) -> None:
    rek.create_collection(CollectionId="faces-1")
    # SearchFaces below asks for FaceMatchThreshold 0: a policy (set on /v1, it governs every
    # API) lowers this collection's floor from the server's 80 to 0
    policy = {"require_purpose": False, "threshold_floor": 0}
    assert api.put("/v1/collections/faces-1/policy", json=policy).status_code == 200
    names = list(people)
    face_of: dict[str, str] = {}
    for name in names:
        result = rek.index_faces(
            CollectionId="faces-1",
            Image={"Bytes": people[name][0]},
            ExternalImageId=f"{name}.jpg",
            MaxFaces=1,
            QualityFilter="AUTO",
            DetectionAttributes=["DEFAULT"],
        )
        assert len(result["FaceRecords"]) == 1
        record = result["FaceRecords"][0]
        face, detail = record["Face"], record["FaceDetail"]
        assert face["ExternalImageId"] == f"{name}.jpg"
        assert face["Confidence"] > 50
        _check_box(face["BoundingBox"])
        assert [lm["Type"] for lm in detail["Landmarks"]] == [
            "eyeLeft",
            "eyeRight",
            "nose",
            "mouthLeft",
            "mouthRight",
        ]
        left, right = detail["Landmarks"][0], detail["Landmarks"][1]
        assert 0 < left["X"] < right["X"] < 1  # eyeLeft is on the image's left
        assert set(detail["Pose"]) == {"Roll", "Yaw", "Pitch"}
        assert 0 <= detail["Quality"]["Sharpness"] <= 100
        assert result["FaceModelVersion"] == face["IndexFacesModelVersion"]
        face_of[name] = face["FaceId"]
    # the same image with the same ExternalImageId again: no duplicate
    again = rek.index_faces(
        CollectionId="faces-1",
        Image={"Bytes": people[names[0]][0]},
        ExternalImageId=f"{names[0]}.jpg",
    )
    assert [r["Face"]["FaceId"] for r in again["FaceRecords"]] == [face_of[names[0]]]
    assert rek.describe_collection(CollectionId="faces-1")["FaceCount"] == len(names)

    # ListFaces pages with opaque tokens; FaceIds filter
    listed, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = rek.list_faces(CollectionId="faces-1", MaxResults=3, **kwargs)
        listed += [f["FaceId"] for f in page["Faces"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(listed) == sorted(face_of.values())
    only = rek.list_faces(CollectionId="faces-1", FaceIds=[face_of[names[1]]])["Faces"]
    assert [f["FaceId"] for f in only] == [face_of[names[1]]]

    # SearchFacesByImage with another photo of each person finds that person first
    for name in names:
        found = rek.search_faces_by_image(
            CollectionId="faces-1", Image={"Bytes": people[name][1]}, FaceMatchThreshold=80
        )
        _check_box(found["SearchedFaceBoundingBox"])
        assert found["SearchedFaceConfidence"] > 50
        assert found["FaceMatches"], f"{name} not found"
        best = found["FaceMatches"][0]
        assert best["Face"]["FaceId"] == face_of[name]
        assert best["Similarity"] >= 80
        sims = [m["Similarity"] for m in found["FaceMatches"]]
        assert sims == sorted(sims, reverse=True)

    # SearchFaces by FaceId: the face itself is not a match; MaxFaces respected
    by_id = rek.search_faces(
        CollectionId="faces-1", FaceId=face_of[names[0]], FaceMatchThreshold=0, MaxFaces=2
    )
    assert by_id["SearchedFaceId"] == face_of[names[0]]
    assert face_of[names[0]] not in [m["Face"]["FaceId"] for m in by_id["FaceMatches"]]
    assert len(by_id["FaceMatches"]) == 2

    # no face in the probe
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.search_faces_by_image(CollectionId="faces-1", Image={"Bytes": _no_face_jpeg()})
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.search_faces(CollectionId="faces-1", FaceId="00000000-0000-0000-0000-000000000000")

    deleted = rek.delete_faces(
        CollectionId="faces-1",
        FaceIds=[face_of[names[0]], "11111111-1111-1111-1111-111111111111"],
    )
    assert deleted["DeletedFaces"] == [face_of[names[0]]]
    assert deleted["UnsuccessfulFaceDeletions"] == [
        {"FaceId": "11111111-1111-1111-1111-111111111111", "Reasons": ["FACE_NOT_FOUND"]}
    ]
    gone = rek.search_faces_by_image(CollectionId="faces-1", Image={"Bytes": people[names[0]][1]})
    assert face_of[names[0]] not in [m["Face"]["FaceId"] for m in gone["FaceMatches"]]
    rek.delete_collection(CollectionId="faces-1")


def test_detect_and_compare_faces(rek: Any, data_dir: Path, people: dict[str, list[bytes]]) -> None:
    couple = (data_dir / "photos" / "couple.jpg").read_bytes()
    details = rek.detect_faces(Image={"Bytes": couple}, Attributes=["ALL"])["FaceDetails"]
    assert len(details) == 2
    areas = [d["BoundingBox"]["Width"] * d["BoundingBox"]["Height"] for d in details]
    assert areas == sorted(areas, reverse=True)  # largest first
    for d in details:
        _check_box(d["BoundingBox"])
        assert d["Confidence"] > 80

    a, b = list(people)[:2]
    same = rek.compare_faces(
        SourceImage={"Bytes": people[a][0]}, TargetImage={"Bytes": people[a][2]}
    )
    assert len(same["FaceMatches"]) == 1 and same["FaceMatches"][0]["Similarity"] >= 80
    assert same["UnmatchedFaces"] == []
    _check_box(same["SourceImageFace"]["BoundingBox"])
    other = rek.compare_faces(
        SourceImage={"Bytes": people[a][0]},
        TargetImage={"Bytes": people[b][0]},
        SimilarityThreshold=80,
    )
    assert other["FaceMatches"] == [] and len(other["UnmatchedFaces"]) == 1
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.compare_faces(SourceImage={"Bytes": _no_face_jpeg()}, TargetImage={"Bytes": couple})


# -- behaviours found missing with AWS's own examples (issue 14) -------------------------------
def _edge_face_jpeg(data_dir: Path) -> bytes:
    """img1.jpg cut through its face: the face crosses the left edge of the image."""
    import cv2

    pixels = cv2.imread(str(data_dir / "photos" / "img1.jpg"))
    cut = pixels[:, pixels.shape[1] // 2 - 100 :]
    small = cv2.resize(cut, (cut.shape[1] // 2, cut.shape[0] // 2))
    ok, encoded = cv2.imencode(".jpg", small)
    assert ok
    return encoded.tobytes()


def _inside(box: dict[str, float]) -> bool:
    return (
        0 <= box["Left"] <= 1
        and 0 <= box["Top"] <= 1
        and box["Left"] + box["Width"] <= 1
        and box["Top"] + box["Height"] <= 1
    )


def test_boxes_of_a_face_crossing_the_edge_are_clipped(rek: Any, data_dir: Path) -> None:
    edge = _edge_face_jpeg(data_dir)
    detected = rek.detect_faces(Image={"Bytes": edge})["FaceDetails"]
    assert len(detected) == 1
    box = detected[0]["BoundingBox"]
    assert box["Left"] == 0 and _inside(box)  # the face is cut by the left edge
    compared = rek.compare_faces(SourceImage={"Bytes": edge}, TargetImage={"Bytes": edge})
    assert _inside(compared["SourceImageFace"]["BoundingBox"])
    assert _inside(compared["FaceMatches"][0]["Face"]["BoundingBox"])
    rek.create_collection(CollectionId="edge-1")
    try:
        indexed = rek.index_faces(CollectionId="edge-1", Image={"Bytes": edge})
        record = indexed["FaceRecords"][0]
        assert _inside(record["Face"]["BoundingBox"]) and _inside(
            record["FaceDetail"]["BoundingBox"]
        )
        searched = rek.search_faces_by_image(CollectionId="edge-1", Image={"Bytes": edge})
        assert _inside(searched["SearchedFaceBoundingBox"])
        assert _inside(searched["FaceMatches"][0]["Face"]["BoundingBox"])
        listed = rek.list_faces(CollectionId="edge-1")["Faces"]
        assert _inside(listed[0]["BoundingBox"])
    finally:
        rek.delete_collection(CollectionId="edge-1")


def test_compare_faces_without_a_face_in_the_target_is_invalid_parameter(
    rek: Any, people: dict[str, list[bytes]]
) -> None:
    source = next(iter(people.values()))[0]
    with pytest.raises(rek.exceptions.InvalidParameterException) as info:
        rek.compare_faces(SourceImage={"Bytes": source}, TargetImage={"Bytes": _no_face_jpeg()})
    assert "target image" in info.value.response["Error"]["Message"]


def test_indexing_an_image_again_returns_the_full_face_detail(rek: Any, data_dir: Path) -> None:
    couple = (data_dir / "photos" / "couple.jpg").read_bytes()
    rek.create_collection(CollectionId="again-1")
    try:
        first = rek.index_faces(
            CollectionId="again-1", Image={"Bytes": couple}, ExternalImageId="couple"
        )
        again = rek.index_faces(
            CollectionId="again-1", Image={"Bytes": couple}, ExternalImageId="couple"
        )
        assert len(first["FaceRecords"]) == 2
        assert again["FaceRecords"] == first["FaceRecords"]  # Face and the full FaceDetail
        for record in again["FaceRecords"]:
            assert {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"} <= set(
                record["FaceDetail"]
            )
        assert rek.describe_collection(CollectionId="again-1")["FaceCount"] == 2
    finally:
        rek.delete_collection(CollectionId="again-1")


# -- users ------------------------------------------------------------------------------------
@BOTH_BACKENDS
def test_users_round_trip(rek: Any, people: dict[str, list[bytes]]) -> None:
    rek.create_collection(CollectionId="users-1")
    a, b = list(people)[:2]
    faces_a = [
        rek.index_faces(CollectionId="users-1", Image={"Bytes": img})["FaceRecords"][0]["Face"][
            "FaceId"
        ]
        for img in people[a][:2]
    ]
    face_b = rek.index_faces(CollectionId="users-1", Image={"Bytes": people[b][0]})["FaceRecords"][
        0
    ]["Face"]["FaceId"]
    rek.create_user(CollectionId="users-1", UserId="person-a")
    with pytest.raises(ClientError) as err:
        rek.create_user(CollectionId="users-1", UserId="person-a")
    assert _code(err.value) == "ConflictException"
    assoc = rek.associate_faces(CollectionId="users-1", UserId="person-a", FaceIds=faces_a)
    assert sorted(f["FaceId"] for f in assoc["AssociatedFaces"]) == sorted(faces_a)
    assert assoc["UserStatus"] in ("ACTIVE", "UPDATING")
    wrong = rek.associate_faces(
        CollectionId="users-1", UserId="person-a", FaceIds=[face_b], UserMatchThreshold=75
    )
    assert wrong["AssociatedFaces"] == []
    assert wrong["UnsuccessfulFaceAssociations"][0]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    users = rek.list_users(CollectionId="users-1")["Users"]
    assert users == [{"UserId": "person-a", "UserStatus": "ACTIVE"}]

    by_face = rek.search_users(CollectionId="users-1", FaceId=faces_a[0])
    assert by_face["SearchedFace"] == {"FaceId": faces_a[0]}
    assert by_face["UserMatches"][0]["User"]["UserId"] == "person-a"
    by_image = rek.search_users_by_image(CollectionId="users-1", Image={"Bytes": people[a][2]})
    assert by_image["UserMatches"][0]["User"]["UserId"] == "person-a"
    assert by_image["UserMatches"][0]["Similarity"] >= 80
    assert "FaceDetail" in by_image["SearchedFace"]
    nobody = rek.search_users_by_image(CollectionId="users-1", Image={"Bytes": _no_face_jpeg()})
    assert nobody["UserMatches"] == [] and "SearchedFace" not in nobody

    listed = rek.list_faces(CollectionId="users-1", UserId="person-a")["Faces"]
    assert sorted(f["FaceId"] for f in listed) == sorted(faces_a)
    assert all(f["UserId"] == "person-a" for f in listed)
    dis = rek.disassociate_faces(CollectionId="users-1", UserId="person-a", FaceIds=[faces_a[0]])
    assert dis["DisassociatedFaces"] == [{"FaceId": faces_a[0]}]
    rek.delete_user(CollectionId="users-1", UserId="person-a")
    assert rek.list_users(CollectionId="users-1")["Users"] == []
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.delete_user(CollectionId="users-1", UserId="person-a")
    rek.delete_collection(CollectionId="users-1")


# -- bad input ------------------------------------------------------------------------------
@BOTH_BACKENDS
def test_bad_images_get_rekognition_codes(
    rek: Any, raw_rek: Any, people: dict[str, list[bytes]]
) -> None:
    jpeg = next(iter(people.values()))[0]
    cases = {
        "InvalidImageFormatException": [b"not an image at all", jpeg[: len(jpeg) // 2], b""],
        "ImageTooLargeException": [jpeg + b"\0" * 5_300_000],
    }
    for code, blobs in cases.items():
        for blob in blobs:
            with pytest.raises(ClientError) as err:
                raw_rek.detect_faces(Image={"Bytes": blob})
            assert _code(err.value) == code, (code, len(blob))
    with pytest.raises(ClientError) as err:
        raw_rek.detect_faces(Image={"Bytes": jpeg, "S3Object": {"Bucket": "abc", "Name": "x"}})
    assert _code(err.value) == "InvalidParameterException"
    with pytest.raises(rek.exceptions.InvalidS3ObjectException):
        rek.detect_faces(Image={"S3Object": {"Bucket": "no-such-bucket", "Name": "x.jpg"}})


def test_server_validation_reports_every_violation(raw_rek: Any) -> None:
    with pytest.raises(ClientError) as err:
        raw_rek.search_faces(
            CollectionId="bad id!",
            FaceId="not-a-face-id",
            MaxFaces=0,
            FaceMatchThreshold=101,
        )
    assert _code(err.value) == "InvalidParameterException"
    message = err.value.response["Error"]["Message"]
    for part in ("CollectionId", "FaceId", "MaxFaces", "FaceMatchThreshold"):
        assert part in message, message
    assert message.startswith("4 validation errors detected")
    with pytest.raises(ClientError) as err:
        raw_rek.index_faces(CollectionId="c", Image={"Bytes": b"x"}, QualityFilter="BEST")
    assert "QualityFilter" in err.value.response["Error"]["Message"]


def test_unimplemented_operation_is_named(rek: Any, people: dict[str, list[bytes]]) -> None:
    jpeg = next(iter(people.values()))[0]
    with pytest.raises(ClientError) as err:
        rek.detect_moderation_labels(Image={"Bytes": jpeg})
    assert _code(err.value) == "UnknownOperationException"
    assert "DetectModerationLabels" in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def _signed(url: str, key: str, secret: str, target: str | None, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=url + "/", data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), "rekognition", REGION).add_auth(request)
    return httpx.post(url + "/", content=body, headers=dict(request.headers.items()))


def test_raw_protocol_errors(live_server: str, api_key: tuple[str, str]) -> None:
    for target, body, code in [
        (None, b"{}", "UnknownOperationException"),
        ("RekognitionService.NoSuchThing", b"{}", "UnknownOperationException"),
        ("Other.ListCollections", b"{}", "UnknownOperationException"),
        ("RekognitionService.ListCollections", b"{not json", "InvalidParameterException"),
        ("RekognitionService.ListCollections", b"[1, 2]", "InvalidParameterException"),
        ("RekognitionService.ListCollections", b'{"Unknown": 1}', "InvalidParameterException"),
        (
            "RekognitionService.DetectFaces",
            b'{"Image": {"Bytes": "***"}}',
            "InvalidParameterException",
        ),
    ]:
        response = _signed(live_server, *api_key, target, body)
        assert response.status_code == 400, (target, response.text)
        assert response.headers["content-type"] == "application/x-amz-json-1.1"
        assert response.headers["x-amzn-requestid"]
        assert response.headers["x-amzn-errortype"] == code
        assert response.json()["__type"] == code, (target, body, response.text)
    ok = _signed(live_server, *api_key, "RekognitionService.ListCollections", b"")
    assert ok.status_code == 200 and "CollectionIds" in ok.json()


# -- authentication ------------------------------------------------------------------------
def test_signatures_are_verified(live_server: str, api_key: tuple[str, str]) -> None:
    key, secret = api_key
    cases = [
        (
            rekognition_client(live_server, key, secret[:-1] + ("x" if secret[-1] != "x" else "y")),
            "InvalidSignatureException",
        ),
        (
            rekognition_client(live_server, "FLAKAAAAAAAAAAAAAAAA", secret),
            "UnrecognizedClientException",
        ),
        (
            rekognition_client(live_server, key, secret, region="eu-west-1"),
            "InvalidSignatureException",
        ),
    ]
    for client, code in cases:
        with pytest.raises(ClientError) as err:
            client.list_collections()
        assert _code(err.value) == code
    unsigned = httpx.post(
        live_server + "/",
        content=b"{}",
        headers={
            "X-Amz-Target": "RekognitionService.ListCollections",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert unsigned.status_code == 400
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"


@BOTH_BACKENDS
def test_roles_are_enforced(live_server: str, live_server_settings: Any) -> None:
    from faceledger.services.keys import KeyService

    keys = KeyService(live_server_settings)
    searcher, secret = keys.create("reader", ["search"])
    client = rekognition_client(live_server, searcher.key_id, secret)
    client.list_collections()  # allowed
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.create_collection(CollectionId="not-allowed")
    keys.revoke(searcher.key_id)
    with pytest.raises(ClientError) as err:
        client.list_collections()
    assert _code(err.value) == "UnrecognizedClientException"


# -- stored video ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def walk_video(live_server_settings: Any, data_dir: Path) -> Any:
    """A 6 s 640×360 MP4 in the server's ``videos`` bucket: an enrolled person (first photo
    of an LFW person; another photo is enrolled) on screen 0.5–4 s, a stranger 2–5.5 s."""
    from helpers.videos import Actor, make_video

    (enrolled, photos), (stranger, others) = list(lfw_people(data_dir, 3, 2).items())
    actors = [
        Actor(enrolled, photos[0], 0.5, 4.0, (40, 100), (240, 120)),
        Actor(stranger, others[0], 2.0, 5.5, (420, 60), (300, 150)),
    ]
    folder = live_server_settings.video_dirs[0]
    truth = make_video(folder / "walk.mp4", actors)
    return truth, enrolled, photos[1], stranger


@BOTH_BACKENDS
def test_stored_video_face_search(rek: Any, walk_video: Any, live_server_settings: Any) -> None:
    truth, enrolled, enrol_photo, _stranger = walk_video
    rek.create_collection(CollectionId="video-search")
    rek.index_faces(
        CollectionId="video-search",
        Image={"Bytes": enrol_photo.read_bytes()},
        ExternalImageId="enrolled-person",
    )
    video = {"S3Object": {"Bucket": "videos", "Name": "walk.mp4"}}
    started = rek.start_face_search(
        Video=video, CollectionId="video-search", JobTag="walk", ClientRequestToken="walk-1"
    )
    # the same token and parameters → the same job; other parameters → a mismatch
    again = rek.start_face_search(
        Video=video, CollectionId="video-search", JobTag="walk", ClientRequestToken="walk-1"
    )
    assert again["JobId"] == started["JobId"]
    with pytest.raises(rek.exceptions.IdempotentParameterMismatchException):
        rek.start_face_search(
            Video=video, CollectionId="video-search", JobTag="other", ClientRequestToken="walk-1"
        )
    done = wait_for_job(rek.get_face_search, started["JobId"])
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    meta = done["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"]) == (640, 360)
    assert meta["Codec"] == "h264" and abs(meta["FrameRate"] - 25) < 0.01
    assert abs(meta["DurationMillis"] - truth.duration_ms) <= 80
    assert done["JobTag"] == "walk" and done["Video"] == video

    persons = done["Persons"]
    matched = [p for p in persons if p.get("FaceMatches")]
    assert matched, "the enrolled person was never matched"
    first, last = truth.on_screen_ms(enrolled)
    for p in matched:
        assert {m["Face"]["ExternalImageId"] for m in p["FaceMatches"]} == {"enrolled-person"}
        assert first - 100 <= p["Timestamp"] <= last + 100
        box = p["Person"]["BoundingBox"]
        cx = (box["Left"] + box["Width"] / 2) * truth.width
        cy = (box["Top"] + box["Height"] / 2) * truth.height
        assert truth.who_at(p["Timestamp"], cx, cy) == enrolled  # never the stranger
    timestamps = [p["Timestamp"] for p in persons]
    assert timestamps == sorted(timestamps)

    # paging with MaxResults, and SortBy INDEX
    pages, token = [], None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = rek.get_face_search(JobId=started["JobId"], MaxResults=3, **kwargs)
        pages += page["Persons"]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == persons
    by_index = rek.get_face_search(JobId=started["JobId"], SortBy="INDEX")["Persons"]
    keys = [(p["Person"]["Index"], p["Timestamp"]) for p in by_index]
    assert keys == sorted(keys)
    with pytest.raises(rek.exceptions.InvalidPaginationTokenException):
        rek.get_face_search(JobId=started["JobId"], NextToken="bogus.token")


@SQLITE_ONLY  # shares the [sqlite] instance of the module's server fixtures (one walk video)
def test_stored_video_detection_and_tracking(rek: Any, walk_video: Any) -> None:
    truth, enrolled, _, stranger = walk_video
    video = {"S3Object": {"Bucket": "videos", "Name": "walk.mp4"}}
    faces_job = rek.start_face_detection(Video=video)["JobId"]
    persons_job = rek.start_person_tracking(Video=video)["JobId"]
    faces = wait_for_job(rek.get_face_detection, faces_job)
    assert faces["JobStatus"] == "SUCCEEDED"
    assert faces["Faces"] and all(0 <= f["Timestamp"] <= truth.duration_ms for f in faces["Faces"])
    assert all(f["Face"]["Confidence"] > 50 for f in faces["Faces"])
    tracked = wait_for_job(rek.get_person_tracking, persons_job)
    assert tracked["JobStatus"] == "SUCCEEDED"
    # each person keeps one index: every detection of an index lies on the same actor
    who: dict[int, set[str]] = {}
    for p in tracked["Persons"]:
        box = p["Person"]["BoundingBox"]
        cx = (box["Left"] + box["Width"] / 2) * truth.width
        cy = (box["Top"] + box["Height"] / 2) * truth.height
        who.setdefault(p["Person"]["Index"], set()).add(str(truth.who_at(p["Timestamp"], cx, cy)))
    assert all(len(names) == 1 for names in who.values()), who
    assert {n for names in who.values() for n in names} == {enrolled, stranger}


@BOTH_BACKENDS
def test_stored_video_bad_input(rek: Any, live_server_settings: Any) -> None:
    folder = live_server_settings.video_dirs[0]
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(rek.exceptions.InvalidS3ObjectException):
        rek.start_face_detection(Video={"S3Object": {"Bucket": "videos", "Name": "missing.mp4"}})
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.start_face_search(
            Video={"S3Object": {"Bucket": "videos", "Name": "broken.mp4"}},
            CollectionId="no-such-collection",
        )
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.get_face_detection(JobId="no-such-job")
    job = rek.start_face_detection(Video={"S3Object": {"Bucket": "videos", "Name": "broken.mp4"}})
    failed = wait_for_job(rek.get_face_detection, job["JobId"])
    assert failed["JobStatus"] == "FAILED"
    assert failed["StatusMessage"] and "Traceback" not in failed["StatusMessage"]
    assert failed["Faces"] == []


# -- stream processors -----------------------------------------------------------------------------
@BOTH_BACKENDS
def test_stream_processor_lifecycle(
    rek: Any, walk_video: Any, live_server_settings: Any, api: Any
) -> None:
    """A processor over a file source (played at its frame rate, like a camera): matches of
    the enrolled person reach the JSONL output and the ledger; the stranger never matches."""
    import time

    truth, _, enrol_photo, _ = walk_video
    rek.create_collection(CollectionId="stream-search")
    rek.index_faces(
        CollectionId="stream-search",
        Image={"Bytes": enrol_photo.read_bytes()},
        ExternalImageId="enrolled-person",
    )
    account = "000000000000"
    source = f"arn:aws:kinesisvideo:{REGION}:{account}:source/file://{truth.path}"
    created = rek.create_stream_processor(
        Name="gate-1",
        Input={"KinesisVideoStream": {"Arn": source}},
        Output={"KinesisDataStream": {"Arn": f"arn:aws:kinesis:{REGION}:{account}:stream/gate"}},
        Settings={"FaceSearch": {"CollectionId": "stream-search", "FaceMatchThreshold": 60}},
        RoleArn=f"arn:aws:iam::{account}:role/rekognition",
    )
    assert created["StreamProcessorArn"].endswith(":streamprocessor/gate-1")
    with pytest.raises(rek.exceptions.ResourceInUseException):
        rek.create_stream_processor(
            Name="gate-1",
            Input={"KinesisVideoStream": {"Arn": source}},
            Output={"KinesisDataStream": {"Arn": f"arn:aws:kinesis:{REGION}:{account}:stream/g"}},
            Settings={"FaceSearch": {"CollectionId": "stream-search"}},
            RoleArn=f"arn:aws:iam::{account}:role/rekognition",
        )
    described = rek.describe_stream_processor(Name="gate-1")
    assert described["Status"] == "STOPPED"
    assert described["Settings"]["FaceSearch"]["FaceMatchThreshold"] == 80  # the floor of 80
    assert described["Input"]["KinesisVideoStream"]["Arn"] == source
    listed = rek.list_stream_processors()["StreamProcessors"]
    assert {"Name": "gate-1", "Status": "STOPPED"} in listed
    rek.update_stream_processor(Name="gate-1", DataSharingPreferenceForUpdate={"OptIn": False})
    assert rek.describe_stream_processor(Name="gate-1")["DataSharingPreference"] == {"OptIn": False}

    watch = {"purpose": "contract test", "case_reference": "T-1"}  # watching is a search
    with api.stream(
        "GET", "/v1/stream-processors/gate-1/events", params=watch, timeout=60
    ) as events:
        session = rek.start_stream_processor(Name="gate-1")["SessionId"]
        assert session
        assert rek.describe_stream_processor(Name="gate-1")["Status"] == "RUNNING"
        with pytest.raises(rek.exceptions.ResourceInUseException):
            rek.delete_stream_processor(Name="gate-1")
        with pytest.raises(rek.exceptions.ResourceInUseException):
            rek.start_stream_processor(Name="gate-1")
        # the SSE stream carries the match with its best-shot crop
        seen: dict[str, Any] = {}
        for line in events.iter_lines():
            if line.startswith("data: "):
                seen = json.loads(line[6:])
                if seen.get("type") == "match":
                    break
        assert seen["external_image_id"] == "enrolled-person"
        assert seen["crop_jpeg_base64"]
    deadline = time.monotonic() + 120
    while rek.describe_stream_processor(Name="gate-1")["Status"] in ("RUNNING", "STOPPING"):
        assert time.monotonic() < deadline, "the file source never ended"
        time.sleep(0.5)
    ended = rek.describe_stream_processor(Name="gate-1")
    assert ended["Status"] == "STOPPED", ended.get("StatusMessage")

    lines = (live_server_settings.data_dir / "streams" / "gate.jsonl").read_text().splitlines()
    matches = [json.loads(x) for x in lines]
    assert matches and {m["external_image_id"] for m in matches} == {"enrolled-person"}
    assert len({(m["track_id"], m["face_id"]) for m in matches}) == len(matches)  # once each
    first, last = truth.on_screen_ms(walk_video[1])
    assert all(first - 100 <= m["frame_timestamp_ms"] <= last + 100 for m in matches)

    with pytest.raises(rek.exceptions.ResourceInUseException):
        rek.stop_stream_processor(Name="gate-1")  # not running
    rek.start_stream_processor(Name="gate-1")  # again, and stopped by hand this time
    rek.stop_stream_processor(Name="gate-1")
    stopped = rek.describe_stream_processor(Name="gate-1")
    assert stopped["Status"] == "STOPPED" and "StatusMessage" not in stopped
    rek.delete_stream_processor(Name="gate-1")
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.describe_stream_processor(Name="gate-1")
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.start_stream_processor(Name="gate-1")


def test_labels_and_text_answer_in_shape(rek: Any) -> None:
    """DetectLabels and DetectText in this module's shape check (their behaviour is tested in
    test_labels_api.py): a plain image has neither objects nor text."""
    image = {"Bytes": _no_face_jpeg()}
    out = rek.detect_labels(Image=image, Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"])
    assert out["Labels"] == [] and out["ImageProperties"]["DominantColors"]
    assert rek.detect_text(Image=image)["TextDetections"] == []


@POSTGRES_ONLY
def test_the_server_keeps_collections_and_faces_in_postgresql(
    rek: Any, live_server_settings: Any, people: dict[str, list[bytes]]
) -> None:
    """The server under these tests really uses PostgreSQL: what boto3 writes is in the
    database's tables, not in an embedded SQLite store in the data directory."""
    import sqlite3

    import psycopg

    images = next(iter(people.values()))
    rek.create_collection(CollectionId="pg-proof")
    face = rek.index_faces(CollectionId="pg-proof", Image={"Bytes": images[0]})
    face_id = face["FaceRecords"][0]["Face"]["FaceId"]
    assert live_server_settings.database_url
    with psycopg.connect(live_server_settings.database_url) as conn:
        row = conn.execute(
            "SELECT c.collection_id, vector_dims(f.embedding) FROM faces f "
            "JOIN collections c USING (collection_pk) WHERE f.face_id = %s",
            (face_id,),
        ).fetchone()
    assert row == ("pg-proof", 128)
    embedded = live_server_settings.data_dir / "faceledger.sqlite3"
    if embedded.exists():  # other stores may keep a file there, never collections or faces
        with sqlite3.connect(embedded) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        assert not tables & {"collections", "faces", "users", "access_keys"}
    rek.delete_collection(CollectionId="pg-proof")


def test_stored_video_label_detection_in_shape(rek: Any, walk_video: Any) -> None:
    """Start/GetLabelDetection answer in Rekognition's shapes (the checker validates every
    member); what the labels are is tested in tests/integration/test_video_labels.py."""
    video = {"S3Object": {"Bucket": "videos", "Name": "walk.mp4"}}
    started = rek.start_label_detection(Video=video, MinConfidence=40, JobTag="labels")
    done = wait_for_job(rek.get_label_detection, started["JobId"])
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["VideoMetadata"]["FrameWidth"] == 640 and isinstance(done["Labels"], list)
    by_segment = rek.get_label_detection(JobId=started["JobId"], AggregateBy="SEGMENTS")
    assert all("DurationMillis" in label for label in by_segment["Labels"])


def test_every_operation_was_exercised_and_shape_checked(
    checker: ShapeChecker, data_dir: Path
) -> None:
    """Runs last in this module: each implemented operation answered at least once (the face
    operations need the shared photos, so this skips without them, as they do)."""
    from faceledger.api.rekognition.router import IMPLEMENTED

    missing = IMPLEMENTED - set(checker.checked)
    assert not missing, f"operations never called successfully: {sorted(missing)}"
