"""Calls of the native ``/v1`` API (httpx) and the checks every answer gets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the native JSON error ``{"error": {"code", "message"}}`` with ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def index(api: httpx.Client, collection: str, data: bytes, **form: Any) -> httpx.Response:
    return api.post(
        f"/v1/collections/{collection}/faces",
        files={"image": ("photo.jpg", data, "image/jpeg")},
        data={k: str(v) for k, v in form.items()},
    )


def enrol(api: httpx.Client, collection: str, path: Path, external_id: str) -> str:
    """Index a one-face photo; its FaceId."""
    body = ok(index(api, collection, path.read_bytes(), external_image_id=external_id))
    assert len(body["faces"]) == 1, body
    face_id: str = body["faces"][0]["face_id"]
    return face_id


def search(api: httpx.Client, collection: str, data: bytes, **form: Any) -> httpx.Response:
    return api.post(
        f"/v1/collections/{collection}/search",
        files={"image": ("probe.jpg", data, "image/jpeg")},
        data={k: str(v) for k, v in form.items()},
    )


def finished_job(api: httpx.Client, job_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """``GET /v1/video/jobs/{job_id}`` once the job is no longer IN_PROGRESS; fails the test
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (out := api.get(f"/v1/video/jobs/{job_id}").json())["status"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, f"job {job_id} still IN_PROGRESS after {timeout_s} s"
        time.sleep(0.2)
    result: dict[str, Any] = out
    return result
