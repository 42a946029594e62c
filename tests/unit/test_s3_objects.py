"""``ImageObjects``: Image.S3Object from local bucket folders and from a real S3-compatible server.

The S3 half runs moto's S3 server in this process on a free loopback port (no network beyond
127.0.0.1) and talks to it over HTTP with boto3, exactly as FaceLedger talks to MinIO or AWS.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import botocore.response
import pytest

from faceledger.config import Settings
from faceledger.domain.errors import (
    ImageTooLargeError,
    InvalidParameterError,
    InvalidS3ObjectError,
)
from faceledger.services import objects as objects_module
from faceledger.services.objects import ImageObjects

SECRET = "s3cr3t-never-shown"


# --------------------------------------------------------------------------------------------
# Local buckets
# --------------------------------------------------------------------------------------------
@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A bucket folder with a file, a nested file, and a secret file next to (outside) it."""
    folder = tmp_path / "photos"
    (folder / "2024" / "june").mkdir(parents=True)
    (folder / "face.jpg").write_bytes(b"top-level bytes")
    (folder / "2024" / "june" / "beach.jpg").write_bytes(b"nested bytes")
    (tmp_path / "secret.jpg").write_bytes(b"outside the bucket")
    return folder


def local_objects(tmp_path: Path, folder: Path, **settings: Any) -> ImageObjects:
    return ImageObjects(
        Settings(data_dir=tmp_path, s3_local_buckets={"photos": folder}, **settings)
    )


def test_local_bucket_reads_a_file(tmp_path: Path, photos: Path) -> None:
    assert local_objects(tmp_path, photos).read("photos", "face.jpg") == b"top-level bytes"


def test_local_bucket_reads_a_nested_path(tmp_path: Path, photos: Path) -> None:
    objects = local_objects(tmp_path, photos)
    assert objects.read("photos", "2024/june/beach.jpg") == b"nested bytes"


def test_local_bucket_follows_a_symlink_that_stays_inside(tmp_path: Path, photos: Path) -> None:
    (photos / "alias.jpg").symlink_to(photos / "2024" / "june" / "beach.jpg")
    assert local_objects(tmp_path, photos).read("photos", "alias.jpg") == b"nested bytes"


@pytest.mark.parametrize("name", ["missing.jpg", "2024/missing.jpg", "2024", "2024/", "face.jpg/x"])
def test_local_bucket_missing_key(tmp_path: Path, photos: Path, name: str) -> None:
    with pytest.raises(InvalidS3ObjectError, match="no such key") as info:
        local_objects(tmp_path, photos).read("photos", name)
    assert f"s3://photos/{name}" in info.value.message
    assert str(tmp_path) not in info.value.message  # never our folder paths


@pytest.mark.parametrize(
    "name",
    ["../secret.jpg", "2024/../../secret.jpg", "2024/../face.jpg", ".", "/etc/passwd", "a\x00b"],
)
def test_local_bucket_refuses_names_outside_the_folder(
    tmp_path: Path, photos: Path, name: str
) -> None:
    with pytest.raises(InvalidS3ObjectError, match="relative path that stays inside"):
        local_objects(tmp_path, photos).read("photos", name)


def test_local_bucket_refuses_an_absolute_path_even_inside_the_folder(
    tmp_path: Path, photos: Path
) -> None:
    with pytest.raises(InvalidS3ObjectError, match="relative path"):
        local_objects(tmp_path, photos).read("photos", str(photos / "face.jpg"))


def test_local_bucket_refuses_symlinks_escaping_the_folder(tmp_path: Path, photos: Path) -> None:
    (photos / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (photos / "linkdir").symlink_to(tmp_path)
    objects = local_objects(tmp_path, photos)
    for name in ("link.jpg", "linkdir/secret.jpg"):
        with pytest.raises(InvalidS3ObjectError, match="stays inside local bucket 'photos'"):
            objects.read("photos", name)


def test_local_bucket_refuses_a_fifo_without_blocking(tmp_path: Path, photos: Path) -> None:
    os.mkfifo(photos / "pipe.jpg")
    with pytest.raises(InvalidS3ObjectError, match="no such key"):
        local_objects(tmp_path, photos).read("photos", "pipe.jpg")


def test_local_bucket_oversize_file(tmp_path: Path, photos: Path) -> None:
    (photos / "big.jpg").write_bytes(b"x" * 101)
    objects = local_objects(tmp_path, photos, max_s3_image_bytes=100)
    assert objects.read("photos", "face.jpg") == b"top-level bytes"
    with pytest.raises(ImageTooLargeError, match=r"101 bytes; the maximum is 100 bytes"):
        objects.read("photos", "big.jpg")
    (photos / "exact.jpg").write_bytes(b"y" * 100)
    assert objects.read("photos", "exact.jpg") == b"y" * 100


def test_local_bucket_refuses_versions(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(InvalidS3ObjectError, match="versions are not supported for local bucket"):
        local_objects(tmp_path, photos).read("photos", "face.jpg", "v1")


def test_local_bucket_whose_folder_is_missing(tmp_path: Path) -> None:
    objects = local_objects(tmp_path, tmp_path / "nowhere")
    with pytest.raises(
        InvalidS3ObjectError, match="local bucket 'photos' is not available"
    ) as info:
        objects.read("photos", "face.jpg")
    assert "nowhere" not in info.value.message


# --------------------------------------------------------------------------------------------
# Parameter validation (botocore's Rekognition model: S3Bucket, S3ObjectName, S3ObjectVersion)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bucket", "name", "version", "field"),
    [
        ("ab", "k", None, "Bucket"),
        ("b" * 256, "k", None, "Bucket"),
        ("bad/bucket", "k", None, "Bucket"),
        ("bad bucket", "k", None, "Bucket"),
        (None, "k", None, "Bucket"),
        ("photos", "", None, "Name"),
        ("photos", "k" * 1025, None, "Name"),
        ("photos", 7, None, "Name"),
        ("photos", "k", "", "Version"),
        ("photos", "k", "v" * 1025, "Version"),
    ],
)
def test_malformed_s3_object_fields(
    tmp_path: Path, bucket: Any, name: Any, version: Any, field: str
) -> None:
    objects = ImageObjects(Settings(data_dir=tmp_path, s3_local_buckets={"photos": tmp_path}))
    with pytest.raises(InvalidParameterError, match=f"S3Object.{field}"):
        objects.read(bucket, name, version)


def test_longest_valid_fields_are_accepted(tmp_path: Path) -> None:
    objects = ImageObjects(Settings(data_dir=tmp_path, s3_local_buckets={"b._-": tmp_path}))
    with pytest.raises(InvalidS3ObjectError, match="no such key"):
        objects.read("b._-", "k" * 200)


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("AccessDenied", 403, "access denied"),
        ("403", 403, "access denied"),
        ("NoSuchVersion", 404, "that version of the object does not exist"),
        ("SlowDown", 503, "the S3 endpoint answered SlowDown (HTTP 503)"),
        ("<bad code>", 500, "the S3 endpoint answered badcode (HTTP 500)"),
    ],
)
def test_s3_error_codes_become_caller_reasons(code: str, status: int, reason: str) -> None:
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )
    assert objects_module._client_reason(error) == reason


# --------------------------------------------------------------------------------------------
# A real S3-compatible server (moto) over HTTP on loopback
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """moto's S3 server on a free 127.0.0.1 port for this module (starts in well under 1 s)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_admin(s3_url: str) -> Any:
    """A plain boto3 client for arranging buckets and objects on the moto server."""
    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="module")
def bucket(s3_admin: Any) -> str:
    """A bucket holding ``face.jpg`` (100 KiB of varied bytes) and ``big.jpg`` (2 MiB)."""
    name = "faceledger-images"
    s3_admin.create_bucket(Bucket=name)
    s3_admin.put_object(Bucket=name, Key="face.jpg", Body=_varied_bytes(100 * 1024))
    s3_admin.put_object(Bucket=name, Key="dir/nested face.jpg", Body=b"nested")
    s3_admin.put_object(Bucket=name, Key="big.jpg", Body=b"z" * (2 * 1_048_576))
    return name


def _varied_bytes(size: int) -> bytes:
    return bytes(i * 7 % 256 for i in range(size))


def s3_objects(tmp_path: Path, url: str, **settings: Any) -> ImageObjects:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "s3_endpoint_url": url,
        "s3_access_key_id": "test",
        "s3_secret_access_key": SECRET,
    }
    values.update(settings)
    return ImageObjects(Settings(**values))


def test_s3_reads_an_objects_exact_bytes(tmp_path: Path, s3_url: str, bucket: str) -> None:
    objects = s3_objects(tmp_path, s3_url)
    try:
        assert objects.read(bucket, "face.jpg") == _varied_bytes(100 * 1024)
        assert objects.read(bucket, "dir/nested face.jpg") == b"nested"
    finally:
        objects.close()
    objects.close()  # idempotent


def test_s3_reads_a_specific_version(tmp_path: Path, s3_url: str, s3_admin: Any) -> None:
    name = "faceledger-versioned"
    s3_admin.create_bucket(Bucket=name)
    s3_admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    first = s3_admin.put_object(Bucket=name, Key="me.jpg", Body=b"first")["VersionId"]
    second = s3_admin.put_object(Bucket=name, Key="me.jpg", Body=b"second")["VersionId"]
    objects = s3_objects(tmp_path, s3_url)
    assert objects.read(name, "me.jpg", first) == b"first"
    assert objects.read(name, "me.jpg", second) == b"second"
    assert objects.read(name, "me.jpg") == b"second"
    with pytest.raises(InvalidS3ObjectError, match="that version of the object does not exist"):
        objects.read(name, "me.jpg", "no-such-version")


@pytest.mark.parametrize(
    ("bucket_name", "key", "reason"),
    [
        ("faceledger-images", "missing.jpg", "the object does not exist"),
        ("faceledger-nowhere", "face.jpg", "the bucket does not exist"),
    ],
)
def test_s3_missing_key_or_bucket(
    tmp_path: Path, s3_url: str, bucket: str, bucket_name: str, key: str, reason: str
) -> None:
    with pytest.raises(InvalidS3ObjectError) as info:
        s3_objects(tmp_path, s3_url).read(bucket_name, key)
    assert info.value.message == f"Unable to read S3 object 's3://{bucket_name}/{key}': {reason}."


def test_s3_oversize_object_is_refused_before_its_body_is_read(
    tmp_path: Path, s3_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_bytes = []
    original = botocore.response.StreamingBody.read

    def counting_read(self: Any, amt: int | None = None) -> bytes:
        data: bytes = original(self, amt)
        read_bytes.append(len(data))
        return data

    monkeypatch.setattr(botocore.response.StreamingBody, "read", counting_read)
    objects = s3_objects(tmp_path, s3_url, max_s3_image_bytes=1_048_576)
    with pytest.raises(ImageTooLargeError, match=r"2,097,152 bytes; the maximum is 1,048,576"):
        objects.read(bucket, "big.jpg")
    assert read_bytes == []  # refused from ContentLength; the body was closed unread
    assert objects.read(bucket, "face.jpg") == _varied_bytes(100 * 1024)
    assert sum(read_bytes) == 100 * 1024


def test_s3_object_at_the_limit_is_read(tmp_path: Path, s3_url: str, bucket: str) -> None:
    objects = s3_objects(tmp_path, s3_url, max_s3_image_bytes=100 * 1024)
    assert len(objects.read(bucket, "face.jpg")) == 100 * 1024


def test_s3_client_is_created_once_and_shared_by_threads(
    tmp_path: Path, s3_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = []
    original = objects_module._make_client

    def counting_make_client(settings: Settings) -> Any:
        made.append(settings)
        return original(settings)

    monkeypatch.setattr(objects_module, "_make_client", counting_make_client)
    objects = s3_objects(tmp_path, s3_url)
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(objects.read(bucket, "dir/nested face.jpg")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [b"nested"] * 8
    assert len(made) == 1


def test_local_buckets_never_reach_s3(
    tmp_path: Path, s3_url: str, bucket: str, photos: Path
) -> None:
    objects = s3_objects(tmp_path, s3_url, s3_local_buckets={bucket: photos})
    assert objects.read(bucket, "face.jpg") == b"top-level bytes"  # the folder, not moto


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()  # nothing listens here now: connections are refused at once
    return port


def test_s3_unreachable_endpoint(tmp_path: Path) -> None:
    objects = s3_objects(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(InvalidS3ObjectError) as info:
        objects.read("faceledger-images", "face.jpg")
    message = info.value.message
    assert message == (
        "Unable to read S3 object 's3://faceledger-images/face.jpg': "
        "the S3 endpoint could not be reached."
    )
    assert SECRET not in str(info.value) and "Traceback" not in message


def test_s3_without_credentials_is_not_configured(
    tmp_path: Path, s3_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups
    objects = s3_objects(tmp_path, s3_url, s3_access_key_id=None, s3_secret_access_key=None)
    with pytest.raises(InvalidS3ObjectError, match="S3 is not configured for bucket") as info:
        objects.read(bucket, "face.jpg")
    assert "s3://faceledger-images/face.jpg" in info.value.message
    assert "FACELEDGER_S3_LOCAL_BUCKETS" in info.value.message


def test_s3_access_key_without_secret(tmp_path: Path, s3_url: str) -> None:
    objects = s3_objects(tmp_path, s3_url, s3_access_key_id="AKIDONLY", s3_secret_access_key=None)
    with pytest.raises(InvalidS3ObjectError, match="S3 is not configured correctly") as info:
        objects.read("faceledger-images", "face.jpg")
    assert "AKIDONLY" not in info.value.message
