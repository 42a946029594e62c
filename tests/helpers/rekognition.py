"""Rekognition clients (boto3) for the live server, and a check of every response's shape.

``ShapeChecker`` is a botocore ``before-parse`` hook: it checks each raw JSON response against
the operation's output shape from botocore's service model (no member botocore does not know,
right JSON types), so a shape mistake fails a test even where botocore would silently drop it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.model import Shape

REGION = "us-east-1"


# -- response shape checking ------------------------------------------------------------------
def _check_shape(value: Any, shape: Shape, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                _check_shape(item, member, f"{path}.{key}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _check_shape(item, shape.member, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map")
            return
        for key, item in value.items():
            _check_shape(item, shape.value, f"{path}[{key}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        elif getattr(shape, "enum", None) and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in the enum {shape.name}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {value!r}")
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{path}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean")
    elif kind == "timestamp" and not isinstance(value, int | float):
        problems.append(f"{path}: expected epoch seconds, got {value!r}")


class ShapeChecker:
    """A botocore ``before-parse`` hook recording shape problems of every 2xx response."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked: list[str] = []

    def __call__(self, operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        headers = {k.lower(): v for k, v in response_dict["headers"].items()}
        if not headers.get("x-amzn-requestid"):
            self.problems.append(f"{operation_model.name}: no x-amzn-RequestId header")
        if response_dict["status_code"] >= 300:
            body = json.loads(response_dict["body"])
            if set(body) != {"__type", "message"}:
                self.problems.append(f"{operation_model.name}: error body {body}")
            if headers.get("x-amzn-errortype") != body.get("__type"):
                self.problems.append(f"{operation_model.name}: X-Amzn-ErrorType mismatch")
            return
        assert headers["content-type"] == "application/x-amz-json-1.1"
        body = json.loads(response_dict["body"])
        _check_shape(body, operation_model.output_shape, operation_model.name, self.problems)
        self.checked.append(operation_model.name)


def rekognition_client(url: str, key: str, secret: str, **config: Any) -> Any:
    """A boto3 Rekognition client of the server at ``url`` (one attempt per call; ``region`` and
    other botocore ``Config`` options as keywords)."""
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name=config.pop("region", REGION),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def wait_for_job(get: Any, job_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """``get(JobId=job_id)`` (a stored-video Get… call) once the job is no longer IN_PROGRESS;
    fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        out: dict[str, Any] = get(JobId=job_id)
        if out["JobStatus"] != "IN_PROGRESS":
            return out
        assert time.monotonic() < deadline, f"job {job_id} still IN_PROGRESS after {timeout_s} s"
        time.sleep(0.2)
