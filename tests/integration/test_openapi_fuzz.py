"""Property-based tests of the native API from its own OpenAPI spec (schemathesis).

The spec is read from the running server (``live_server`` + ``/openapi.json``). For every
operation schemathesis generates requests that fit the spec (positive) and requests that do
not (negative), sent with the session's admin key. Every answer must

* never be a server error (``not_a_server_error``);
* use a status code and a body schema the spec documents (``status_code_conformance``,
  ``response_schema_conformance``);
* refuse negative data with a 4xx (``negative_data_rejection``).

Positive cases go further than "no such collection": for routes under a collection, some of
them target a real collection made for this module, and uploads are sometimes real photos
(one face, two faces) instead of schemathesis's random bytes, so the engine, the quality
filter and the response models are reached with generated parameters.

schemathesis's own pytest loader (``schemathesis.pytest.from_fixture``) does not run under
pytest 9 (it sets ``Node._nodeid``, which pytest 9 removed), so each operation's strategy is
driven by a Hypothesis ``@given`` inside one pytest subtest per operation and mode.

Reproducible and bounded: generation is derandomized (the same cases on every run of the same
source tree), capped at ``MAX_EXAMPLES`` per operation and mode, without a deadline or an
example database. The collections the generated requests create are deleted afterwards, so
later modules sharing the session's server see none of them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 30
# uvicorn (h11) closes the connection on a request head over 16 KiB, before FaceLedger sees
# it; longer query strings (the spec allows 4,096 ``face_id`` values) test the HTTP server.
MAX_QUERY_BYTES = 8 * 1024
# The multipart file fields of the upload routes (OpenAPI 3.1 ``contentMediaType`` fields, which
# schemathesis fills with text).
UPLOAD_FIELDS = frozenset({"image", "source", "target"})
# The one operation whose collection must not be the module's own (it would delete it).
DELETES_THE_COLLECTION = "DELETE /v1/collections/{collection_id}"

POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openapi_schema(live_server: str) -> schemathesis.schemas.BaseSchema:
    """The spec as the server serves it, with an explicit config (no schemathesis.toml is read).

    Generated requests never carry their own ``Authorization`` (every call sends the admin key;
    authentication has its own tests) nor undocumented parameters (ignored, as HTTP APIs do),
    so ``negative_data_rejection`` judges only the documented parameters and bodies.
    """
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {"generation": {"with-security-parameters": False, "allow-extra-parameters": False}}
    )
    return schemathesis.openapi.from_url(f"{live_server}/openapi.json", config=config, timeout=10)


def _collection_ids(api: httpx.Client) -> set[str]:
    """Every collection on the server (all pages)."""
    ids: set[str] = set()
    params: dict[str, Any] = {"max_results": 1000}
    while True:
        response = api.get("/v1/collections", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids.update(c["collection_id"] for c in page["collections"])
        if not page["next_token"]:
            return ids
        params["next_token"] = page["next_token"]


@pytest.fixture(scope="module")
def fuzz_collection(api: httpx.Client) -> Iterator[str]:
    """A collection for generated requests to work in; afterwards it and every collection
    the generated requests created are deleted (ids hold only ``[a-zA-Z0-9_.-]``; dots are
    percent-encoded so that ids such as ``..`` reach the route instead of being resolved away)."""
    before = _collection_ids(api)
    collection_id = f"fuzz-{uuid.uuid4().hex[:12]}"
    created = api.post("/v1/collections", json={"collection_id": collection_id})
    assert created.status_code == 201, created.text
    yield collection_id
    time.sleep(2.5)  # the generated requests may have spent the key's rate (50/s, burst 100)
    for leftover in sorted(_collection_ids(api) - before):
        response = api.delete("/v1/collections/" + leftover.replace(".", "%2E"))
        assert response.status_code == 204, (leftover, response.text)
    assert _collection_ids(api) == before


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> list[bytes]:
    """Real uploads: a photo of two people and a one-face LFW photo."""
    lfw = sorted((data_dir / "lfw-devtrain" / "images").iterdir())[0]
    return [
        (data_dir / "photos" / "couple.jpg").read_bytes(),
        sorted(lfw.glob("*.jpg"))[0].read_bytes(),
    ]


# -- the test ---------------------------------------------------------------------------------
def _fuzz(
    strategy: st.SearchStrategy[schemathesis.Case],
    checks: list[Any],
    headers: dict[str, str],
    photos: list[bytes],
) -> None:
    """Run ``MAX_EXAMPLES`` cases of ``strategy`` (query strings up to ``MAX_QUERY_BYTES``);
    with ``photos``, some draws replace the upload fields with a real photo."""

    @FUZZ_SETTINGS
    @hypothesis.given(case=strategy, photo=st.sampled_from([None, *photos]))
    def run(case: schemathesis.Case, photo: bytes | None) -> None:
        hypothesis.assume(len(urlencode(case.query or {}, doseq=True)) <= MAX_QUERY_BYTES)
        multipart = (case.media_type or "").startswith("multipart/")
        if photo is not None and multipart and isinstance(case.body, dict):
            body: dict[str, Any] = case.body
            for field in UPLOAD_FIELDS & body.keys():
                body[field] = photo
        case.call_and_validate(headers=headers, checks=checks, timeout=60)

    run()


def test_generated_requests_get_documented_answers_and_no_server_errors(
    openapi_schema: schemathesis.schemas.BaseSchema,
    fuzz_collection: str,
    photos: list[bytes],
    auth_headers: dict[str, str],
    subtests: pytest.Subtests,
) -> None:
    """Every operation, positive then (if it takes any input) negative, as one subtest each."""
    operations = []
    for result in openapi_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the spec itself is broken
        operations.append(result.ok())
    assert len(operations) >= 19  # /healthz, detect, compare and the collection routes
    for operation in operations:
        label = operation.label
        with subtests.test(msg=f"{label} (positive)"):
            positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            if "{collection_id}" in operation.path and label != DELETES_THE_COLLECTION:
                in_collection = operation.as_strategy(
                    generation_mode=GenerationMode.POSITIVE,
                    path_parameters={"collection_id": fuzz_collection},
                )
                positive = positive | in_collection
            _fuzz(positive, POSITIVE_CHECKS, auth_headers, photos)
        if operation.path_parameters or operation.query or operation.body:
            with subtests.test(msg=f"{label} (negative)"):
                negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
                _fuzz(negative, NEGATIVE_CHECKS, auth_headers, [])
