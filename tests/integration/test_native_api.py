"""The native REST API against a real uvicorn server (``live_server``), spoken to with httpx.

Requests carry the session's admin key (``api`` is an ``httpx.Client`` that sends it); the
authentication tests use their own headers. Photos and LFW come from ``../shared/data`` (the
``data_dir`` fixture skips when absent); the bad-upload cases are synthetic and need no test
data.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import cv2
import httpx
import numpy as np
import pytest
from fastapi import Depends, FastAPI
from PIL import Image as PILImage
from PIL import ImageOps

from faceledger.domain.faces import LANDMARK_NAMES

MAX_IMAGE_BYTES = 5_242_880


# --- helpers -----------------------------------------------------------------------------------


def _encode(pixels: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, pixels)
    assert ok
    return buf.tobytes()


def _gray_png(side: int = 200) -> bytes:
    return _encode(np.full((side, side, 3), 128, np.uint8))


def _noise_jpeg(side: int = 200) -> bytes:
    rng = np.random.default_rng(0)
    return _encode(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), ".jpg")


def _gif() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (120, 120), (200, 10, 10)).save(out, format="GIF")
    return out.getvalue()


def detect(
    api: httpx.Client, data: bytes, filename: str = "photo.jpg", **form: Any
) -> httpx.Response:
    return api.post(
        "/v1/detect",
        files={"image": (filename, data, "application/octet-stream")},
        data={k: str(v) for k, v in form.items()},
    )


def compare(api: httpx.Client, source: bytes, target: bytes) -> httpx.Response:
    return api.post(
        "/v1/compare",
        files={"source": ("source.jpg", source), "target": ("target.jpg", target)},
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


def _lfw_image(data_dir: Path, name: str, number: str) -> bytes:
    path = data_dir / "lfw-devtrain" / "images" / name / f"{name}_{int(number):04d}.jpg"
    return path.read_bytes()


def _first_pairs(data_dir: Path) -> tuple[list[str], list[str]]:
    """The first same-person and the first different-people line of pairsDevTrain.txt."""
    lines = (data_dir / "lfw-devtrain" / "pairsDevTrain.txt").read_text().splitlines()[1:]
    rows = [line.split() for line in lines if line.strip()]
    same = next(r for r in rows if len(r) == 3)
    different = next(r for r in rows if len(r) == 4)
    return same, different


@pytest.fixture(scope="module")
def couple(data_dir: Path) -> bytes:
    return (data_dir / "photos" / "couple.jpg").read_bytes()


# --- health, docs ------------------------------------------------------------------------------


def test_healthz_reports_the_loaded_default_pack(live_server: str) -> None:
    body = httpx.get(f"{live_server}/healthz", timeout=10).json()
    assert body["status"] == "ok"
    assert body["pack"] == "yunet-sface"
    assert body["face_model_version"].startswith("yunet-sface")
    assert body["loaded"] is True  # loaded by the lifespan, before any request


def test_docs_and_openapi_are_served(live_server: str) -> None:
    docs = httpx.get(f"{live_server}/docs", timeout=10)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = httpx.get(f"{live_server}/openapi.json", timeout=10).json()
    assert {"/healthz", "/v1/detect", "/v1/compare"} <= set(spec["paths"])
    detect_body = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in detect_body


# --- authentication ----------------------------------------------------------------------------


def _auth_error(response: httpx.Response, code: str) -> dict[str, Any]:
    error = assert_error(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"
    return error


def test_no_authorization_header_is_401(live_server: str, couple: bytes) -> None:
    response = httpx.post(f"{live_server}/v1/detect", files={"image": couple}, timeout=60)
    _auth_error(response, "MissingAuthenticationTokenException")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic dXNlcjpwYXNz", "IncompleteSignatureException"),
        ("Bearer no-colon-here", "IncompleteSignatureException"),
        ("Bearer FLAKAAAAAAAAAAAAAAAA:not-a-key", "UnrecognizedClientException"),
    ],
    ids=["basic", "no-colon", "unknown-key"],
)
def test_malformed_or_unknown_keys_are_401(
    live_server: str, couple: bytes, header: str, code: str
) -> None:
    response = httpx.post(
        f"{live_server}/v1/detect",
        files={"image": couple},
        headers={"Authorization": header},
        timeout=60,
    )
    _auth_error(response, code)


def test_wrong_secret_is_401(live_server: str, api_key: tuple[str, str], couple: bytes) -> None:
    key_id, secret = api_key
    response = httpx.post(
        f"{live_server}/v1/detect",
        files={"image": couple},
        headers={"Authorization": f"Bearer {key_id}:{secret[::-1]}"},
        timeout=60,
    )
    error = _auth_error(response, "InvalidSignatureException")
    assert secret not in error["message"]


def test_roles_decide_what_a_key_may_call(
    live_server: str,
    make_key: Callable[[str, list[str]], tuple[str, str]],
    couple: bytes,
) -> None:
    key_id, secret = make_key("field-officer", ["search"])
    headers = {"Authorization": f"Bearer {key_id}:{secret}"}
    with httpx.Client(base_url=live_server, headers=headers, timeout=60) as searcher:
        allowed = searcher.post("/v1/detect", files={"image": couple})
        assert allowed.status_code == 200, allowed.text
        denied = searcher.post("/v1/collections/any/faces", files={"image": couple})
    error = assert_error(denied, 403, "AccessDeniedException")
    assert "field-officer" in error["message"] and "IndexFaces" in error["message"]
    assert "search" in error["message"]


def test_an_auditor_may_not_detect(
    live_server: str, make_key: Callable[[str, list[str]], tuple[str, str]], couple: bytes
) -> None:
    key_id, secret = make_key("auditor-1", ["audit"])
    response = httpx.post(
        f"{live_server}/v1/detect",
        files={"image": couple},
        headers={"Authorization": f"Bearer {key_id}:{secret}"},
        timeout=60,
    )
    assert "DetectFaces" in assert_error(response, 403, "AccessDeniedException")["message"]


def test_insecure_mode_takes_every_request_as_the_dev_admin(tmp_path: Path) -> None:
    """In-process (no lifespan, so no key store at all): the key check is skipped, and the
    caller carries the purpose headers and a fresh request id."""
    from faceledger.api.app import create_app
    from faceledger.api.native.auth import current_caller
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller
    from faceledger.domain.principals import INSECURE_DEV_PRINCIPAL

    app: FastAPI = create_app(Settings(data_dir=tmp_path, insecure_accept_any_signature=True))

    @app.get("/v1/whoami")
    async def whoami(caller: Caller = Depends(current_caller)) -> dict[str, Any]:
        assert caller.principal == INSECURE_DEV_PRINCIPAL
        return {
            "principal": caller.principal.name,
            "source": caller.source,
            "request_id": caller.request_id,
            "purpose": caller.purpose,
            "case_reference": caller.case_reference,
        }

    async def call() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {
                "Authorization": "Bearer x:y",
                "X-FaceLedger-Purpose": "missing person",
                "x-faceledger-case": "C-17",
            }
            return [
                await client.get("/v1/whoami", headers=headers),
                await client.get("/v1/whoami", headers={"Authorization": "Bearer x:y"}),
            ]

    first, second = anyio.run(call)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["principal"] == INSECURE_DEV_PRINCIPAL.name and body["source"] == "native"
    assert (body["purpose"], body["case_reference"]) == ("missing person", "C-17")
    assert second.json()["purpose"] is None and second.json()["case_reference"] is None
    assert len(body["request_id"]) == 36 and body["request_id"] != second.json()["request_id"]


def test_openapi_declares_the_bearer_scheme(live_server: str) -> None:
    spec = httpx.get(f"{live_server}/openapi.json", timeout=10).json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert operation.get("security"), f"{method.upper()} {path} has no security"
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


# --- detect ------------------------------------------------------------------------------------


def test_detect_couple_gives_two_faces_in_pixels(api: httpx.Client, couple: bytes) -> None:
    response = detect(api, couple, "couple.jpg")
    assert response.status_code == 200, response.text
    body = response.json()
    width, height = ImageOps.exif_transpose(PILImage.open(io.BytesIO(couple))).size
    assert (body["image"]["width_px"], body["image"]["height_px"]) == (width, height)
    faces = body["faces"]
    assert len(faces) == 2
    areas = [f["bbox_px"]["width"] * f["bbox_px"]["height"] for f in faces]
    assert areas == sorted(areas, reverse=True)  # largest first
    for face in faces:
        box = face["bbox_px"]
        assert box["width"] > 20 and box["height"] > 20  # pixels, not ratios
        assert box["left"] >= 0 and box["left"] + box["width"] <= width + 0.1
        assert box["top"] >= 0 and box["top"] + box["height"] <= height + 0.1
        assert 0 < face["confidence"] <= 100
        assert tuple(face["landmarks_px"]) == LANDMARK_NAMES
        for point in face["landmarks_px"].values():
            assert 0 <= point["x"] <= width and 0 <= point["y"] <= height
        assert set(face["quality"]) == {"brightness", "sharpness"}
        assert all(0 <= v <= 100 for v in face["quality"].values())
        assert set(face["pose_deg"]) == {"yaw", "pitch", "roll"}


def test_detect_max_faces_limits_the_result(api: httpx.Client, couple: bytes) -> None:
    response = detect(api, couple, max_faces=1)
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1


def test_detect_gray_image_finds_no_face(api: httpx.Client) -> None:
    response = detect(api, _gray_png(), "gray.png")
    assert response.status_code == 200, response.text
    assert response.json()["faces"] == []


# --- compare -----------------------------------------------------------------------------------


def test_compare_same_person_scores_high(api: httpx.Client, data_dir: Path) -> None:
    (name, i, j), _ = _first_pairs(data_dir)
    response = compare(api, _lfw_image(data_dir, name, i), _lfw_image(data_dir, name, j))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["face_model_version"].startswith("yunet-sface")
    assert body["calibrated"] is True
    assert "bbox_px" in body["source_face"]
    assert body["matches"][0]["similarity"] > 80
    # Similarity ≥ 80 stands for a measured false-match rate of at most 1 in 100,000
    assert body["matches"][0]["false_match_rate_at_most"] <= 1e-5


def test_compare_different_people_scores_low(api: httpx.Client, data_dir: Path) -> None:
    _, (name_a, i, name_b, j) = _first_pairs(data_dir)
    response = compare(api, _lfw_image(data_dir, name_a, i), _lfw_image(data_dir, name_b, j))
    assert response.status_code == 200, response.text
    assert max(m["similarity"] for m in response.json()["matches"]) < 50


def test_compare_matches_are_sorted_by_similarity(api: httpx.Client, couple: bytes) -> None:
    body = compare(api, couple, couple).json()
    sims = [m["similarity"] for m in body["matches"]]
    assert len(sims) == 2
    assert sims == sorted(sims, reverse=True)
    assert sims[0] > 95  # the source face found itself
    top = body["matches"][0]
    assert top["face"]["bbox_px"] == body["source_face"]["bbox_px"]
    assert -1 <= top["cosine"] <= 1


def test_compare_without_a_source_face_is_invalid_parameter(
    api: httpx.Client, couple: bytes
) -> None:
    error = assert_error(compare(api, _gray_png(), couple), 400, "InvalidParameterException")
    assert "source" in error["message"]


def test_compare_without_a_target_face_is_invalid_parameter(
    api: httpx.Client, couple: bytes
) -> None:
    error = assert_error(compare(api, couple, _gray_png()), 400, "InvalidParameterException")
    assert "target" in error["message"]


def test_pixel_boxes_of_a_face_crossing_the_edge_stay_inside_the_image(
    api: httpx.Client, data_dir: Path
) -> None:
    pixels = cv2.imread(str(data_dir / "photos" / "img1.jpg"))
    cut = pixels[: pixels.shape[0] // 2 + 150, pixels.shape[1] // 2 - 100 :]  # left edge
    response = detect(api, _encode(cut, ".jpg"))
    assert response.status_code == 200, response.text
    body = response.json()
    width, height = body["image"]["width_px"], body["image"]["height_px"]
    boxes = [face["bbox_px"] for face in body["faces"]]
    assert boxes and boxes[0]["left"] == 0
    for box in boxes:
        assert box["left"] >= 0 and box["left"] + box["width"] <= width
        assert box["top"] >= 0 and box["top"] + box["height"] <= height


# --- bad uploads -------------------------------------------------------------------------------

BAD_UPLOADS: list[tuple[str, Callable[[], bytes], str, str]] = [
    ("empty", lambda: b"", "InvalidImageFormatException", "empty"),
    (
        "truncated-jpeg",
        lambda: _noise_jpeg()[: len(_noise_jpeg()) // 2],
        "InvalidImageFormatException",
        "truncated",
    ),
    (
        "text-named-jpg",
        lambda: b"hello, this is not a photo\n" * 10,
        "InvalidImageFormatException",
        "text",
    ),
    ("gif", _gif, "InvalidImageFormatException", "GIF"),
    ("png-8x8", lambda: _encode(np.zeros((8, 8, 3), np.uint8)), "InvalidParameterException", "8×8"),
    # Over the whole-body cap: refused from Content-Length before the multipart is parsed.
    (
        "6-MB-body",
        lambda: b"\xff\xd8\xff" + bytes(6_000_000),
        "ImageTooLargeException",
        "request body",
    ),
    # Just over the image limit but inside the body cap: refused by the capped upload read.
    (
        "just-over-5-MiB",
        lambda: b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES),
        "ImageTooLargeException",
        "'image' image",
    ),
]


@pytest.mark.parametrize(
    ("data_factory", "code", "fragment"),
    [
        pytest.param(factory, code, fragment, id=name)
        for name, factory, code, fragment in BAD_UPLOADS
    ],
)
def test_bad_uploads_are_400_json_errors(
    api: httpx.Client, data_factory: Callable[[], bytes], code: str, fragment: str
) -> None:
    error = assert_error(detect(api, data_factory(), "x.jpg"), 400, code)
    assert fragment.lower() in error["message"].lower()


def _multipart(field: str, data: bytes, boundary: str = "faceledger-test-boundary") -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


def _chunked(body: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _post_chunked(api: httpx.Client, body: bytes) -> httpx.Response:
    """A body without Content-Length (Transfer-Encoding: chunked)."""
    return api.post(
        "/v1/detect",
        content=_chunked(body),
        headers={"Content-Type": "multipart/form-data; boundary=faceledger-test-boundary"},
    )


def test_chunked_oversized_upload_is_refused(api: httpx.Client) -> None:
    body = _multipart("image", b"\xff\xd8\xff" + bytes(6_000_000))
    assert_error(_post_chunked(api, body), 400, "ImageTooLargeException")


def test_chunked_upload_within_the_limit_still_works(api: httpx.Client, couple: bytes) -> None:
    response = _post_chunked(api, _multipart("image", couple))
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 2


# --- request validation --------------------------------------------------------------------------


def test_missing_field_is_invalid_parameter(api: httpx.Client) -> None:
    error = assert_error(api.post("/v1/detect"), 400, "InvalidParameterException")
    assert "'image' is required" in error["message"]


def test_compare_missing_target_is_invalid_parameter(api: httpx.Client) -> None:
    response = api.post("/v1/compare", files={"source": ("a.png", _gray_png())})
    error = assert_error(response, 400, "InvalidParameterException")
    assert "'target' is required" in error["message"]


@pytest.mark.parametrize("max_faces", ["0", "101", "many"])
def test_bad_max_faces_is_invalid_parameter(api: httpx.Client, max_faces: str) -> None:
    error = assert_error(
        detect(api, _gray_png(), max_faces=max_faces), 400, "InvalidParameterException"
    )
    assert "max_faces" in error["message"]


def test_all_problems_are_reported_in_one_message(api: httpx.Client) -> None:
    response = api.post("/v1/detect", data={"max_faces": "0"})
    message = assert_error(response, 400, "InvalidParameterException")["message"]
    assert "'image' is required" in message and "max_faces" in message


def test_unknown_path_is_a_json_error(live_server: str) -> None:
    assert_error(httpx.get(f"{live_server}/v1/nope", timeout=10), 404, "NotFound")


# --- unexpected failures -----------------------------------------------------------------


def test_unexpected_exception_is_a_500_without_traceback(tmp_path: Path) -> None:
    """In-process (no lifespan, no models): a route that crashes yields the generic 500."""
    from faceledger.api.app import create_app
    from faceledger.config import Settings

    app: FastAPI = create_app(Settings(data_dir=tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom")

    response = anyio.run(call)
    error = assert_error(response, 500, "InternalServerError")
    assert "request id" in error["message"]
    assert response.headers["x-request-id"] in error["message"]
    assert "secret internal detail" not in response.text


# --- the spec's error answers ------------------------------------------------------------------


def test_openapi_documents_400_not_422(live_server: str) -> None:
    """Validation problems are 400 InvalidParameterException, so the spec has no 422 at all."""
    spec = httpx.get(f"{live_server}/openapi.json", timeout=10).json()
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method.upper()} {path}"
            if operation.get("parameters") or operation.get("requestBody"):
                schema = responses["400"]["content"]["application/json"]["schema"]
                assert schema == error_ref, f"{method.upper()} {path}"
    schemas = spec["components"]["schemas"]
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)
    assert '"422"' not in httpx.get(f"{live_server}/openapi.json", timeout=10).text
    assert httpx.get(f"{live_server}/docs", timeout=10).status_code == 200


def test_openapi_gives_a_route_without_a_400_the_error_response(tmp_path: Path) -> None:
    """In-process: a route added later with a parameter and no documented 400 gets one."""
    from faceledger.api.app import create_app
    from faceledger.config import Settings

    app: FastAPI = create_app(Settings(data_dir=tmp_path))
    assert "/extra" not in app.openapi()["paths"]

    @app.get("/extra")
    async def extra(count: int) -> int:
        return count

    responses = app.openapi()["paths"]["/extra"]["get"]["responses"]  # rebuilt: routes changed
    assert sorted(responses) == ["200", "400"]
    schema = responses["400"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "HTTPValidationError" not in app.openapi()["components"]["schemas"]
