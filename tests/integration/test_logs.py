"""Structured logs: one JSON line per request with request id, principal, operation, outcome
and duration — and never a secret or image bytes.

A real server gets native (bearer) and Rekognition (SigV4 via boto3) calls, good and bad,
while every log record of the process is formatted by the JSON formatter. Each line parses;
the access records carry the fields, and their request ids are the ledger's; no line holds an
access-key secret, a wrong secret a client sent, or the photo's bytes or base64.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from faceledger.audit import Ledger
from faceledger.config import Settings
from faceledger.logs import HumanFormatter, JsonFormatter, redact
from helpers.data import lfw_people
from helpers.live import create_key, start_live_server


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of the process, JSON-formatted, at INFO and above."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("faceledger", "uvicorn")}
    root.addHandler(handler)
    for name in levels:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_request_logs_are_structured_and_hold_no_secrets(
    tmp_path: Path, data_dir: Path, captured: io.StringIO
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        ledger_key_file=tmp_path / "keys" / "ledger.key",
        default_threshold_floor=80,
    )
    key_id, secret = create_key(settings, "log-principal", ["admin", "enrol", "search"])
    photo = next(iter(lfw_people(data_dir, 1, 1).values()))[0].read_bytes()
    wrong = "wrong-secret-" + "q" * 30
    with start_live_server(settings) as url:
        bearer = {"Authorization": f"Bearer {key_id}:{secret}"}
        with httpx.Client(base_url=url, timeout=120) as client:
            assert client.post("/v1/collections", json={"collection_id": "c"}, headers=bearer)
            indexed = client.post(
                "/v1/collections/c/faces",
                files={"image": ("a.jpg", photo, "image/jpeg")},
                headers=bearer,
            )
            assert indexed.status_code == 200
            refused = client.get(
                "/v1/collections", headers={"Authorization": f"Bearer {key_id}:{wrong}"}
            )
            assert refused.status_code == 401
        rek = boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
        )
        rek.search_faces_by_image(CollectionId="c", Image={"Bytes": photo})
        with pytest.raises(rek.exceptions.InvalidImageFormatException):
            rek.detect_faces(Image={"Bytes": b"not an image at all" * 10})
    logging.getLogger("faceledger.test").info("header was Authorization: Bearer %s", secret)

    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "faceledger.access"]
    by_operation = {line["operation"]: line for line in access}
    index_line = by_operation["/v1/collections/{collection_id}/faces"]
    assert index_line["principal"] == "log-principal"
    assert index_line["outcome"] == "ok" and index_line["status"] == 200
    assert index_line["duration_ms"] > 0
    assert by_operation["SearchFacesByImage"]["principal"] == "log-principal"
    assert by_operation["DetectFaces"]["outcome"] == "client_error"
    assert by_operation["/v1/collections"]["principal"] == "-"  # refused before authentication
    assert by_operation["/v1/collections"]["status"] == 401
    with Ledger(settings.data_dir / "ledger.sqlite3", key_file=settings.ledger_key_file) as ledger:  # type: ignore[arg-type]
        ledgered = {e.payload["request_id"] for e in ledger.entries(principal="log-principal")}
    assert index_line["request_id"] in ledgered
    assert by_operation["SearchFacesByImage"]["request_id"] in ledgered

    for forbidden in (
        secret,
        wrong,
        base64.b64encode(photo[:300]).decode()[:80],
        photo[:64].hex(),
        repr(photo[:16])[2:-1],
    ):
        assert forbidden not in text
    assert "Bearer [redacted]" in text


def test_formats_and_redaction() -> None:
    record = logging.LogRecord(
        "faceledger.access", logging.INFO, "", 0, "%s %s", ("op", "ok"), None
    )
    record.request_id, record.principal, record.duration_ms = "r1", "alice", 1.5
    record.blob = b"\xff\xd8\xff" * 10
    human = HumanFormatter().format(record)
    assert "op ok" in human and "request_id=r1 principal=alice" in human
    assert "blob=<30 bytes>" in human
    data = json.loads(JsonFormatter().format(record))
    assert data["principal"] == "alice" and data["blob"] == "<30 bytes>"
    assert redact("aws_secret_access_key=abc123 x") == "aws_secret_access_key=[redacted] x"
    assert redact("Signature=" + "ab" * 32) == "Signature=[redacted]"
    assert "A" * 300 not in redact("data " + "A" * 300)
