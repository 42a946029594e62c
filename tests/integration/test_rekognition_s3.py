"""``Image.S3Object`` through boto3's Rekognition client, against a real server of its own.

The server (uvicorn on loopback, built like ``live_server``) maps bucket ``photos`` to a local
folder and points ``s3_endpoint_url`` at moto's S3 server, also on loopback, so one module
covers both ways an S3Object is read. Two LFW photos of one person are copied into the folder
and uploaded to a versioned moto bucket under the same names; every operation must answer
exactly as it does when the same photo is sent inline as ``Bytes``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import cv2
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from faceledger.config import Settings
from faceledger.services.keys import KeyService
from helpers.live import start_live_server

REGION = "us-east-1"
LOCAL_BUCKET = "photos"
# moto keeps its buckets per process: a unique name cannot meet another module's buckets.
REMOTE_BUCKET = f"faceledger-rekognition-{uuid.uuid4().hex[:8]}"
NOT_AN_IMAGE = b"these are notes, not a photo\n" * 20


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(data_dir: Path) -> tuple[str, str]:
    """Object names ``<person>/<file>.jpg`` of two photos of the first LFW person with two."""
    root = data_dir / "lfw-devtrain" / "images"
    for folder in sorted(root.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= 2:
            return f"{folder.name}/{images[0].name}", f"{folder.name}/{images[1].name}"
    pytest.skip(f"no LFW person with two photos under {root}")


@pytest.fixture(scope="module")
def photo_bytes(data_dir: Path, photos: tuple[str, str]) -> dict[str, bytes]:
    """The two photos' bytes by object name (what ``Image.Bytes`` sends)."""
    root = data_dir / "lfw-devtrain" / "images"
    return {name: (root / name).read_bytes() for name in photos}


@pytest.fixture(scope="module")
def local_bucket(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, photos: tuple[str, str]
) -> Path:
    """The folder behind bucket ``photos``: the two photos and ``notes.jpg`` (not an image)."""
    folder = tmp_path_factory.mktemp("bucket-photos")
    for name in photos:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / "lfw-devtrain" / "images" / name, folder / name)
    (folder / "notes.jpg").write_bytes(NOT_AN_IMAGE)
    return folder


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """moto's S3 server on a free 127.0.0.1 port for this module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def versions(
    s3_url: str, photos: tuple[str, str], photo_bytes: dict[str, bytes]
) -> tuple[str, str]:
    """Fill the versioned moto bucket; the VersionIds of ``versioned.jpg`` (photo 1, photo 2).

    It holds both photos under their names, ``notes.jpg`` (not an image) and ``versioned.jpg``
    written twice: first photo 1, then photo 2 (the latest).
    """
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket=REMOTE_BUCKET)
    s3.put_bucket_versioning(Bucket=REMOTE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for name in photos:
        s3.put_object(Bucket=REMOTE_BUCKET, Key=name, Body=photo_bytes[name])
    s3.put_object(Bucket=REMOTE_BUCKET, Key="notes.jpg", Body=NOT_AN_IMAGE)
    first, second = (
        s3.put_object(Bucket=REMOTE_BUCKET, Key="versioned.jpg", Body=photo_bytes[name])[
            "VersionId"
        ]
        for name in photos
    )
    s3.close()
    return first, second


@pytest.fixture(scope="module")
def rek(
    tmp_path_factory: pytest.TempPathFactory,
    local_bucket: Path,
    s3_url: str,
    versions: tuple[str, str],
) -> Iterator[Any]:
    """A boto3 Rekognition client of this module's own server (a key made before it starts),
    whose settings map ``photos`` to ``local_bucket`` and S3 to moto."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("s3-server-data"),
        s3_local_buckets={LOCAL_BUCKET: local_bucket},
        s3_endpoint_url=s3_url,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        default_threshold_floor=80,  # Rekognition's behaviour, as the live server's
    )
    keys = KeyService(settings)
    try:
        # no role does everything: collections need admin, IndexFaces enrol, the rest search
        key, secret = keys.create("s3-test-admin", ["admin", "enrol", "search"])
    finally:
        keys.close()
    with start_live_server(settings) as url:
        client = boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=key.key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        yield client
        client.close()


# -- helpers ----------------------------------------------------------------------------------
def s3_image(bucket: str, name: str, version: str | None = None) -> dict[str, Any]:
    """An ``Image`` naming an S3 object (and its version)."""
    s3_object = {"Bucket": bucket, "Name": name}
    if version is not None:
        s3_object["Version"] = version
    return {"S3Object": s3_object}


def body(response: dict[str, Any]) -> dict[str, Any]:
    """A response without its ResponseMetadata (request ids differ from call to call)."""
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def client_error(excinfo: pytest.ExceptionInfo[ClientError], code: str) -> str:
    """Check the error is a 400 with ``code`` and a message; the message."""
    response = excinfo.value.response
    assert response["Error"]["Code"] == code, response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = str(response["Error"]["Message"])
    assert message and "Traceback" not in message
    return message


# -- the S3Object path answers as the Bytes path ------------------------------------------------
@pytest.mark.parametrize("bucket", [LOCAL_BUCKET, REMOTE_BUCKET], ids=["local", "s3"])
def test_detect_faces_from_an_s3_object_matches_bytes(
    rek: Any, photos: tuple[str, str], photo_bytes: dict[str, bytes], bucket: str
) -> None:
    for name in photos:
        from_object = rek.detect_faces(Image=s3_image(bucket, name), Attributes=["ALL"])
        from_bytes = rek.detect_faces(Image={"Bytes": photo_bytes[name]}, Attributes=["ALL"])
        assert from_object["FaceDetails"], name
        assert body(from_object) == body(from_bytes)


def test_index_and_search_by_s3_object_match_bytes(
    rek: Any, photos: tuple[str, str], photo_bytes: dict[str, bytes]
) -> None:
    enrolled, probe = photos
    by_object, by_bytes = f"s3-{uuid.uuid4().hex[:8]}", f"bytes-{uuid.uuid4().hex[:8]}"
    rek.create_collection(CollectionId=by_object)
    rek.create_collection(CollectionId=by_bytes)
    try:
        indexed = rek.index_faces(CollectionId=by_object, Image=s3_image(LOCAL_BUCKET, enrolled))
        [record] = indexed["FaceRecords"]
        face = record["Face"]
        inline = rek.index_faces(CollectionId=by_bytes, Image={"Bytes": photo_bytes[enrolled]})
        [inline_record] = inline["FaceRecords"]
        assert face["BoundingBox"] == inline_record["Face"]["BoundingBox"]
        assert face["Confidence"] == inline_record["Face"]["Confidence"]
        assert record["FaceDetail"] == inline_record["FaceDetail"]
        assert indexed["UnindexedFaces"] == inline["UnindexedFaces"]
        # the object was read byte for byte: the same photo inline is the same image
        again = rek.index_faces(CollectionId=by_object, Image={"Bytes": photo_bytes[enrolled]})
        assert [r["Face"]["FaceId"] for r in again["FaceRecords"]] == [face["FaceId"]]

        # a second photo of the person, from moto, finds the enrolled face as inline bytes do
        searched = rek.search_faces_by_image(
            CollectionId=by_object, Image=s3_image(REMOTE_BUCKET, probe)
        )
        assert searched["FaceMatches"][0]["Face"]["FaceId"] == face["FaceId"]
        assert searched["FaceMatches"][0]["Similarity"] >= 80
        inline_search = rek.search_faces_by_image(
            CollectionId=by_object, Image={"Bytes": photo_bytes[probe]}
        )
        assert body(searched) == body(inline_search)
    finally:
        rek.delete_collection(CollectionId=by_object)
        rek.delete_collection(CollectionId=by_bytes)


def test_compare_faces_from_s3_objects_matches_bytes(
    rek: Any, photos: tuple[str, str], photo_bytes: dict[str, bytes]
) -> None:
    source, target = photos
    from_objects = rek.compare_faces(
        SourceImage=s3_image(LOCAL_BUCKET, source), TargetImage=s3_image(REMOTE_BUCKET, target)
    )
    from_bytes = rek.compare_faces(
        SourceImage={"Bytes": photo_bytes[source]}, TargetImage={"Bytes": photo_bytes[target]}
    )
    assert from_objects["FaceMatches"][0]["Similarity"] >= 80  # the same person
    assert body(from_objects) == body(from_bytes)


def test_a_version_of_an_s3_object_is_read(
    rek: Any, photos: tuple[str, str], photo_bytes: dict[str, bytes], versions: tuple[str, str]
) -> None:
    details = [
        rek.detect_faces(Image={"Bytes": photo_bytes[name]})["FaceDetails"] for name in photos
    ]
    assert details[0] != details[1]
    for version, expected in zip(versions, details, strict=True):
        image = s3_image(REMOTE_BUCKET, "versioned.jpg", version)
        assert rek.detect_faces(Image=image)["FaceDetails"] == expected
    latest = rek.detect_faces(Image=s3_image(REMOTE_BUCKET, "versioned.jpg"))
    assert latest["FaceDetails"] == details[1]
    with pytest.raises(ClientError) as info:
        rek.detect_faces(Image=s3_image(REMOTE_BUCKET, "versioned.jpg", "no-such-version"))
    message = client_error(info, "InvalidS3ObjectException")
    assert "that version of the object does not exist" in message


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bucket", "name", "code", "fragment"),
    [
        (LOCAL_BUCKET, "nobody/missing.jpg", "InvalidS3ObjectException", "no such key"),
        (REMOTE_BUCKET, "nobody/missing.jpg", "InvalidS3ObjectException", "does not exist"),
        ("no-such-bucket", "x.jpg", "InvalidS3ObjectException", "bucket does not exist"),
        (LOCAL_BUCKET, "../x.jpg", "InvalidS3ObjectException", "relative path that stays inside"),
        (LOCAL_BUCKET, "notes.jpg", "InvalidImageFormatException", ""),
        (REMOTE_BUCKET, "notes.jpg", "InvalidImageFormatException", ""),
    ],
    ids=[
        "local-missing-key",
        "s3-missing-key",
        "s3-missing-bucket",
        "local-traversal",
        "local-not-an-image",
        "s3-not-an-image",
    ],
)
def test_unreadable_s3_objects_are_400_errors(
    rek: Any, local_bucket: Path, bucket: str, name: str, code: str, fragment: str
) -> None:
    with pytest.raises(ClientError) as info:
        rek.detect_faces(Image=s3_image(bucket, name))
    message = client_error(info, code)
    assert fragment in message
    if code == "InvalidS3ObjectException":
        assert message.startswith(f"Unable to read S3 object 's3://{bucket}/{name}'")
    assert str(local_bucket) not in message  # never the server's folders


@pytest.mark.parametrize("operation", ["index_faces", "search_faces_by_image", "compare_faces"])
def test_every_image_operation_reports_a_missing_s3_object(
    rek: Any, photos: tuple[str, str], operation: str
) -> None:
    collection = f"errors-{uuid.uuid4().hex[:8]}"
    missing = s3_image(LOCAL_BUCKET, "nobody/missing.jpg")
    calls = {
        "index_faces": lambda: rek.index_faces(CollectionId=collection, Image=missing),
        "search_faces_by_image": lambda: rek.search_faces_by_image(
            CollectionId=collection, Image=missing
        ),
        "compare_faces": lambda: rek.compare_faces(
            SourceImage=s3_image(LOCAL_BUCKET, photos[0]), TargetImage=missing
        ),
    }
    rek.create_collection(CollectionId=collection)
    try:
        with pytest.raises(ClientError) as info:
            calls[operation]()
        assert "s3://photos/nobody/missing.jpg" in client_error(info, "InvalidS3ObjectException")
    finally:
        rek.delete_collection(CollectionId=collection)


# -- size limits: S3Object up to 15 MiB, Bytes up to 5 MiB -------------------------------------
def _large_png(face_jpeg: bytes, size_bytes: int) -> bytes:
    """A PNG of about ``size_bytes`` (incompressible noise) with one large face in its middle."""
    face = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)[40:210, 40:210]
    side_px = int(np.sqrt(size_bytes / 3)) + 1
    canvas = np.random.default_rng(14).integers(0, 256, (side_px, side_px, 3), dtype=np.uint8)
    top = (side_px - 800) // 2
    canvas[top : top + 800, top : top + 800] = cv2.resize(face, (800, 800))
    ok, encoded = cv2.imencode(".png", canvas, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return encoded.tobytes()


def test_s3_objects_up_to_15_mib_while_bytes_stay_at_5_mib(
    rek: Any, local_bucket: Path, photos: tuple[str, str], photo_bytes: dict[str, bytes]
) -> None:
    face = photo_bytes[photos[0]]
    big = _large_png(face, 9_000_000)
    assert 5_242_880 < len(big) <= 15_728_640
    (local_bucket / "big.png").write_bytes(big)
    found = rek.detect_faces(Image=s3_image(LOCAL_BUCKET, "big.png"))["FaceDetails"]
    assert len(found) == 1 and found[0]["BoundingBox"]["Width"] > 0.2
    with pytest.raises(ClientError) as info:
        rek.detect_faces(Image={"Bytes": big})
    assert "5,242,880" in client_error(info, "ImageTooLargeException")

    too_big = _large_png(face, 17_500_000)
    assert len(too_big) > 15_728_640
    (local_bucket / "too-big.png").write_bytes(too_big)
    with pytest.raises(ClientError) as info:
        rek.detect_faces(Image=s3_image(LOCAL_BUCKET, "too-big.png"))
    assert "15,728,640" in client_error(info, "ImageTooLargeException")
