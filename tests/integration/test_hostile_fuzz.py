"""A hostile fuzz of every Rekognition operation and every ``/v1`` route: no 5xx, no traceback.

Hypothesis (derandomized: the same requests on every run of the same source tree, no example
database) draws batches of requests against a server of this module's own:

* Rekognition: every implemented operation, bodies drawn from the operation's input shape in
  botocore's service model (with hostile strings, numbers, blobs and tokens at every member),
  or arbitrary JSON, bytes, JSON nested thousands deep; signed with SigV4 by a real key, or
  unsigned, or with a forged or malformed signature.
* Native: every route of the server's OpenAPI spec, path parameters hostile or real, query
  parameters and JSON bodies drawn from the spec's names with hostile values, multipart
  uploads of real and broken images; with the admin key, no key or a wrong one.

Every answer must be below 500 and carry no traceback, and the server must log no unhandled
exception. The server runs in this process (malloc arenas capped as ``serve`` caps them); the
process's resident set is read after 800 warm-up requests and at the end and must stay flat:
within 10 % (plus 16 MB of slack for the faces, collections and ledger records the requests
legitimately add).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import httpx
import hypothesis
import numpy as np
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import Shape
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from faceledger.api.rekognition.protocol import service_model
from faceledger.api.rekognition.router import IMPLEMENTED
from faceledger.config import Settings
from faceledger.process import limit_malloc_arenas
from helpers.live import create_key, start_live_server

BATCHES = 100
PER_BATCH = 50  # 5,000 requests
WARM_UP_BATCHES = 16  # 800 requests before the first RSS reading
REGION = "us-east-1"
LONG_ID = "L" * 255  # the longest valid CollectionId, with more faces than a page

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.generate],  # a failure reports its request; no shrinking runs
)


def _jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _png16_bomb() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((4000, 6000, 4), np.uint16))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def blobs(data_dir: Path) -> list[bytes]:
    """Image bytes a request may carry: real faces, noise, broken and costly images."""
    face = sorted((data_dir / "lfw-devtrain" / "images").iterdir())[0]
    real = next(iter(sorted(face.glob("*.jpg")))).read_bytes()
    small = _jpeg(96, 96, 1)
    return [
        real,
        small,
        small[: len(small) // 2],  # truncated
        _jpeg(79, 200, 2),  # a side under 80 px
        _png16_bomb(),  # over the decode budget
        b"GIF89a" + b"\x00" * 64,
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\xff" * 40,
    ]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, blobs: list[bytes]
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("fuzz-data")
    settings = Settings(
        data_dir=data,
        default_threshold_floor=0,
        # Image.S3Object / Video.S3Object go to a closed local port, never to the network
        s3_endpoint_url="http://127.0.0.1:9",
        s3_access_key_id="fuzz",
        s3_secret_access_key="fuzz",
        default_rate_per_second=0,  # no throttling: every request reaches the handlers
    )
    key_id, secret = create_key(settings, "fuzz-admin", ["admin", "enrol", "search"])
    limit_malloc_arenas()  # as ``faceledger serve`` does (the server runs in this process)
    with start_live_server(settings) as url:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key_id}:{secret}"}, timeout=60
        ) as api:
            for collection_id in ("fz-a", "fz-b", LONG_ID):
                assert api.post("/v1/collections", json={"collection_id": collection_id})
            for i in range(3):
                added = api.post(
                    f"/v1/collections/{LONG_ID}/faces",
                    files={"image": ("f.jpg", blobs[0], "image/jpeg")},
                    data={"external_image_id": f"face-{i}"},
                )
                assert added.status_code == 200, added.text
            spec = api.get("/openapi.json").json()
        yield {"url": url, "key": (key_id, secret), "spec": spec}


# -- strategies ------------------------------------------------------------------------------
HOSTILE_TEXT = st.one_of(
    st.sampled_from(
        ["", "fz-a", "fz-b", LONG_ID, "L" * 256, "..", "a/b", "%00", "\x00", "é" * 300, "NaN"]
    ),
    st.text(max_size=40),
    st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=300),
)
HOSTILE_INT = st.one_of(
    st.integers(-5, 5000), st.sampled_from([-(2**63), 2**63, 10**30, 4096, 4097, 0])
)
HOSTILE_FLOAT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([-1.0, 100.0, 1e308])
)
SCALARS = st.none() | st.booleans() | HOSTILE_INT | HOSTILE_FLOAT | HOSTILE_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _for_shape(shape: Shape, blobs: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for a botocore shape: mostly of the right type, hostile in range and content."""
    kind = shape.type_name
    wrong = SCALARS if depth else JSON_VALUES  # a value of the wrong type
    if depth > 4:
        return wrong
    if kind == "structure":
        members = {
            name: _for_shape(member, blobs, depth + 1) for name, member in shape.members.items()
        }
        typed = st.fixed_dictionaries({}, optional=members)
    elif kind == "list":
        typed = st.lists(_for_shape(shape.member, blobs, depth + 1), max_size=3)
    elif kind == "map":
        typed = st.dictionaries(HOSTILE_TEXT, _for_shape(shape.value, blobs, depth + 1), max_size=3)
    elif kind == "string":
        enum = getattr(shape, "enum", None)
        typed = st.sampled_from(enum) | HOSTILE_TEXT if enum else HOSTILE_TEXT
    elif kind in ("integer", "long"):
        typed = HOSTILE_INT
    elif kind in ("float", "double"):
        typed = HOSTILE_FLOAT
    elif kind == "boolean":
        typed = st.booleans()
    elif kind == "blob":
        typed = st.sampled_from([*blobs, "***", "", "QQ"])
    elif kind == "timestamp":
        typed = HOSTILE_INT | HOSTILE_TEXT
    else:
        typed = wrong
    return st.one_of(typed, typed, typed, wrong) if depth else typed


def shape_strategies(blobs: list[bytes]) -> dict[str, st.SearchStrategy[Any]]:
    """Per implemented operation, input values drawn from its botocore input shape."""
    encoded = [base64.b64encode(b).decode() for b in blobs]
    strategies = {}
    for operation in sorted(IMPLEMENTED):
        shape = service_model().operation_model(operation).input_shape
        strategies[operation] = _for_shape(shape, encoded) if shape is not None else JSON_VALUES
    return strategies


@st.composite
def rekognition_request(
    draw: st.DrawFn, strategies: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    operation = draw(st.sampled_from(sorted(strategies)))
    body_kind = draw(st.sampled_from(["shape"] * 6 + ["json", "bytes", "deep"]))
    if body_kind == "shape":
        body = json.dumps(draw(strategies[operation])).encode()
    elif body_kind == "json":
        body = json.dumps(draw(JSON_VALUES)).encode()
    elif body_kind == "deep":
        body = b'{"CollectionId":' * draw(st.integers(30, 3000)) + b"1"
    else:
        body = draw(st.binary(max_size=200))
    target = draw(
        st.sampled_from([f"RekognitionService.{operation}"] * 8 + ["", "Nope.Op", "x" * 300])
    )
    auth = draw(st.sampled_from(["signed"] * 8 + ["none", "forged", "garbage"]))
    return {
        "api": "rekognition",
        "operation": operation,
        "target": target,
        "body": body,
        "auth": auth,
    }


def native_routes(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path template, method, OpenAPI operation) of every ``/v1`` route."""
    return [
        (path, method, operation)
        for path, operations in sorted(spec["paths"].items())
        for method, operation in sorted(operations.items())
        if path.startswith("/v1/")
    ]


@st.composite
def native_request(
    draw: st.DrawFn,
    spec: dict[str, Any],
    routes: st.SearchStrategy[tuple[str, str, dict[str, Any]]],
    blobs: list[bytes],
) -> dict[str, Any]:
    path, method, operation = draw(routes)
    # never delete the fixtures the other requests work in
    deletes_collection = method == "delete" and path == "/v1/collections/{collection_id}"
    values: dict[str, str] = {}
    query: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            choice = draw(
                st.sampled_from(["scratch"] if deletes_collection else ["fz-a", LONG_ID, "hostile"])
            )
            raw = draw(HOSTILE_TEXT) if choice in ("hostile", "scratch") else choice
            if choice == "scratch":
                raw = "scratch-" + raw
            values[parameter["name"]] = quote(raw.replace(".", "%2E"), safe="%") or "x"
        elif parameter["in"] == "query" and draw(st.booleans()):
            query[parameter["name"]] = str(draw(SCALARS))[:300]
    url_path = path.format(**values)
    content = operation.get("requestBody", {}).get("content", {})
    request: dict[str, Any] = {
        "api": "native",
        "method": method.upper(),
        "path": url_path,
        "query": query,
        "auth": draw(st.sampled_from(["key"] * 8 + ["none", "wrong"])),
    }
    if "multipart/form-data" in content:
        props = content["multipart/form-data"].get("schema", {})
        names = sorted(_schema_properties(spec, props))
        files = {
            name: ("p.jpg", draw(st.sampled_from(blobs)), "image/jpeg")
            for name in names
            if name in ("image", "source", "target")
        }
        fields = {
            name: str(draw(SCALARS))[:200]
            for name in names
            if name not in files and draw(st.booleans())
        }
        request.update(files=files, data=fields)
    elif "application/json" in content:
        props = _schema_properties(spec, content["application/json"].get("schema", {}))
        kind = draw(st.sampled_from(["fields"] * 5 + ["json", "deep", "bytes"]))
        if kind == "fields":
            body = json.dumps(
                {name: draw(SCALARS) for name in props if draw(st.booleans())}
            ).encode()
        elif kind == "json":
            body = json.dumps(draw(JSON_VALUES)).encode()
        elif kind == "deep":
            body = b"[" * draw(st.integers(30, 3000))
        else:
            body = draw(st.binary(max_size=200))
        request["content"] = body
    return request


def _schema_properties(spec: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


# -- sending ---------------------------------------------------------------------------------
def _send(client: httpx.Client, server: dict[str, Any], request: dict[str, Any]) -> httpx.Response:
    key_id, secret = server["key"]
    if request["api"] == "rekognition":
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if request["target"]:
            headers["X-Amz-Target"] = request["target"]
        if request["auth"] in ("signed", "forged"):
            signer = secret if request["auth"] == "signed" else secret + "x"
            aws = AWSRequest(
                method="POST", url=server["url"] + "/", data=request["body"], headers=headers
            )
            SigV4Auth(Credentials(key_id, signer), "rekognition", REGION).add_auth(aws)
            headers = dict(aws.headers.items())
        elif request["auth"] == "garbage":
            headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=" + "/" * 9
        return client.post("/", content=request["body"], headers=headers)
    headers = {}
    if request["auth"] == "key":
        headers["Authorization"] = f"Bearer {key_id}:{secret}"
    elif request["auth"] == "wrong":
        headers["Authorization"] = f"Bearer {key_id}:not-it"
    kwargs: dict[str, Any] = {"params": request["query"], "headers": headers}
    if "files" in request:
        kwargs["files"] = request["files"]
        kwargs["data"] = request["data"]
    elif "content" in request:
        kwargs["content"] = request["content"]
        headers["Content-Type"] = "application/json"
    return client.request(request["method"], request["path"], **kwargs)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024 / 1e6
    raise AssertionError("no VmRSS")


def test_no_input_causes_a_server_error(
    server: dict[str, Any], blobs: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    stats: dict[str, Any] = {"requests": 0, "batches": 0, "status": {}, "routes": set()}
    one = st.one_of(
        rekognition_request(shape_strategies(blobs)),
        native_request(server["spec"], st.sampled_from(native_routes(server["spec"])), blobs),
    )
    started = time.monotonic()

    with httpx.Client(base_url=server["url"], timeout=120) as client:

        @FUZZ_SETTINGS
        @given(st.lists(one, min_size=PER_BATCH, max_size=PER_BATCH))
        def batch(requests: list[dict[str, Any]]) -> None:
            for request in requests:
                response = _send(client, server, request)
                stats["requests"] += 1
                stats["status"][response.status_code] = (
                    stats["status"].get(response.status_code, 0) + 1
                )
                stats["routes"].add(request.get("operation") or request["path"])
                shown = {k: (v[:200] if isinstance(v, bytes) else v) for k, v in request.items()}
                assert response.status_code < 500, (shown, response.text[:500])
                assert "Traceback" not in response.text, shown
            stats["batches"] += 1
            if stats["batches"] == WARM_UP_BATCHES:
                stats["rss_after_warm_up_mb"] = _rss_mb()

        with caplog.at_level(logging.ERROR):
            batch()
    stats["rss_end_mb"] = _rss_mb()
    wall_s = time.monotonic() - started
    statuses = sorted(stats["status"].items())
    print(
        f"\n{stats['requests']} requests in {wall_s:.0f} s, statuses {statuses}, RSS "
        f"{stats['rss_after_warm_up_mb']:.0f} → {stats['rss_end_mb']:.0f} MB"
    )
    assert stats["requests"] >= 5000
    errors = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors[:5]]
    assert stats["routes"] >= IMPLEMENTED  # every Rekognition operation was fuzzed
    assert stats["rss_end_mb"] <= stats["rss_after_warm_up_mb"] * 1.10 + 16
