"""Hostile requests: refused before their bodies are read, JSON nested too deep, oversized JSON.

Refusal before reading is shown on a raw socket: the client declares a 10.4 MB body but sends
only its first 64 KiB, then waits. A server that reads (or spools) the body before checking
the key would wait for the rest and never answer; the test sees the refusal instead, and the
temporary folder where uploads would be spooled stays empty.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from faceledger.api.json_limits import MAX_JSON_DEPTH, json_depth

DECLARED_BYTES = 10_400_077
SENT_BYTES = 64 * 1024
BOUNDARY = "hostile-boundary"


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where Python's ``tempfile`` (so Starlette's multipart spooling) writes, for this test."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def _partial_upload(url: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send the head of an oversized upload and read the answer; (status, body)."""
    parts = urlsplit(url)
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        f"Content-Length: {DECLARED_BYTES}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    preamble = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="source"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.sendall(preamble + b"\xff" * (SENT_BYTES - len(preamble)))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # a server still reading the body never answers: timeout
            if not chunk:
                break
            answer += chunk
        head_text, _, rest = answer.partition(b"\r\n\r\n")
        status = int(head_text.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head_text.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, rest


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "MissingAuthenticationTokenException"),
        ("Bearer FLAKAAAAAAAAAAAAAAAA:not-the-secret", "UnrecognizedClientException"),
    ],
)
def test_unauthenticated_upload_is_refused_unread(
    live_server: str, spool_dir: Path, authorization: str | None, code: str
) -> None:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if authorization:
        headers["Authorization"] = authorization
    status, body = _partial_upload(live_server, "/v1/compare", headers)
    assert status == 401
    assert json.loads(body)["error"]["code"] == code
    assert list(spool_dir.iterdir()) == []


def test_wrong_secret_upload_is_refused_unread(
    live_server: str, api_key: tuple[str, str], spool_dir: Path
) -> None:
    key_id, _ = api_key
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Authorization": f"Bearer {key_id}:wrong-secret",
    }
    status, body = _partial_upload(live_server, "/v1/collections/any/faces", headers)
    assert status == 401
    assert json.loads(body)["error"]["code"] == "InvalidSignatureException"
    assert list(spool_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "MissingAuthenticationTokenException"),
        ("AWS4-HMAC-SHA256 Credential=nope", "IncompleteSignatureException"),
        (
            "AWS4-HMAC-SHA256 Credential=FLAKAAAAAAAAAAAAAAAA/20260101/us-east-1/rekognition/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            "UnrecognizedClientException",
        ),
    ],
)
def test_unauthenticated_rekognition_body_is_refused_unread(
    live_server: str, authorization: str | None, code: str
) -> None:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "RekognitionService.IndexFaces",
    }
    if authorization:
        headers["Authorization"] = authorization
    status, body = _partial_upload(live_server, "/", headers)
    assert status == 400  # Rekognition answers authentication errors with 400
    assert json.loads(body)["__type"] == code


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_json_depth_scan_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": "[[[{{{", "b": [1, [2, {"c": "\\"]]]"}]]}') == 4
    assert json_depth(b"[" * 5000 + b"]" * 5000) == 5000
    assert json_depth(b"") == 0


def test_deep_json_is_a_serialization_error(
    live_server: str, auth_headers: dict[str, str], api_key: tuple[str, str]
) -> None:
    deep = _deep(1000)  # ~7 KB; a RecursionError (500) in the JSON parser before
    native = httpx.post(
        f"{live_server}/v1/collections",
        content=deep,
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert native.status_code == 400, native.text
    assert native.json()["error"]["code"] == "SerializationException"
    fine = _deep(MAX_JSON_DEPTH - 1)
    assert (
        httpx.post(
            f"{live_server}/v1/collections",
            content=fine,
            headers={**auth_headers, "Content-Type": "application/json"},
        ).status_code
        == 400
    )  # deep enough to parse, then an ordinary validation error

    request = AWSRequest(
        method="POST",
        url=live_server + "/",
        data=deep,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.ListCollections",
        },
    )
    SigV4Auth(Credentials(*api_key), "rekognition", "us-east-1").add_auth(request)
    answer = httpx.post(live_server + "/", content=deep, headers=dict(request.headers.items()))
    assert answer.status_code == 400, answer.text
    assert answer.json()["__type"] == "SerializationException"
    assert answer.headers["x-amzn-errortype"] == "SerializationException"


def test_oversized_json_is_refused(live_server: str, auth_headers: dict[str, str]) -> None:
    big = json.dumps({"collection_id": "x", "pad": "y" * 2_000_000}).encode()
    answer = httpx.post(
        f"{live_server}/v1/collections",
        content=big,
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "SerializationException"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = httpx.post(
        f"{live_server}/v1/collections",
        content=chunks(),
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 400
    assert streamed.json()["error"]["code"] == "SerializationException"
