"""Rekognition's wire format, read from the installed botocore's own service model.

Nothing here is hand-copied from the model: operation names, input shapes, required members,
types, lengths, ranges, patterns and enums all come from
``botocore/data/rekognition/2016-06-27/service-2.json`` as botocore loads it. A request body is
checked against its operation's input shape and every violation is collected into one message
(botocore's ``ParamValidator`` checks presence, types and minimums; this module adds what it
leaves to the server: maximums, patterns, enums and unknown members). Base64 blobs are decoded
here, once, so the services receive bytes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Iterator
from typing import Any

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from faceledger.api.json_limits import check_json_depth
from faceledger.domain.errors import InvalidParameterError, UnknownOperationError

TARGET_PREFIX = "RekognitionService"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_REPORTED_VALUE = 60  # characters of an offending value quoted in a message


@functools.cache
def service_model() -> ServiceModel:
    """Rekognition's service model from the installed botocore (loaded once)."""
    return botocore.session.get_session().get_service_model("rekognition")


def operation_model(target: str | None, implemented: frozenset[str]) -> OperationModel:
    """The operation an ``X-Amz-Target`` header names, if FaceLedger serves it."""
    if not target:
        raise UnknownOperationError(
            "Missing X-Amz-Target header: send 'X-Amz-Target: RekognitionService.<Operation>' "
            "with Content-Type application/x-amz-json-1.1"
        )
    prefix, _, name = target.partition(".")
    if prefix != TARGET_PREFIX or not name:
        raise UnknownOperationError(
            f"X-Amz-Target {_quote(target)} does not name a Rekognition operation "
            f"(expected '{TARGET_PREFIX}.<Operation>')"
        )
    model = service_model()
    if name not in model.operation_names:
        raise UnknownOperationError(f"{name} is not a Rekognition operation")
    if name not in implemented:
        raise UnknownOperationError(
            f"FaceLedger does not implement the Rekognition operation {name}; "
            f"it serves: {', '.join(sorted(implemented))}"
        )
    return model.operation_model(name)


def parse_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty object, as AWS accepts)."""
    if not body.strip():
        return {}
    check_json_depth(body)  # SerializationException: nested too deep for the parser
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidParameterError("The request body must be a JSON object")
    return value


def validate(operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` against the operation's input shape; return them with blobs decoded.

    Raises one ``InvalidParameterException`` listing every violation.
    """
    shape = operation.input_shape
    problems: list[str] = []
    if shape is not None:
        report = ParamValidator().validate(params, shape)
        problems.extend(_botocore_problems(report.generate_report()))
        problems.extend(_extra_problems(params, shape, "", set(problems)))
    if problems:
        count = len(problems)
        raise InvalidParameterError(
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems)
        )
    return _decode_blobs(params, shape) if shape is not None else {}


def _botocore_problems(report: str) -> Iterator[str]:
    for line in report.splitlines():
        if line.strip():
            yield _shorten_values(line.strip())


def _shorten_values(text: str) -> str:
    """botocore quotes whole values (a megabyte of base64 included); keep messages short."""
    if len(text) <= 300:
        return text
    return text[:280] + "…"


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_REPORTED_VALUE else text[: MAX_REPORTED_VALUE - 3] + "..."


@functools.cache
def _pattern(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def _extra_problems(value: Any, shape: Shape, path: str, known: set[str]) -> Iterator[str]:
    """Maximums, patterns, enums and unknown members (what botocore's validator skips).

    Values of the wrong type are skipped: botocore has reported them already.
    """
    name = path or "input"
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure" and isinstance(value, dict):
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                continue  # botocore reports unknown members
            yield from _extra_problems(item, member, f"{path}.{key}" if path else key, known)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{name} must have at most {meta['max']} items, got {len(value)}"
        for i, item in enumerate(value):
            yield from _extra_problems(item, shape.member, f"{name}[{i}]", known)
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{name} must have at most {meta['max']} entries, got {len(value)}"
        for key, item in value.items():
            yield from _extra_problems(key, shape.key, f"{name} key {_quote(key)}", known)
            yield from _extra_problems(item, shape.value, f"{name}[{_quote(key)}]", known)
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{name} must have length at most {meta['max']}, got {len(value)}"
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            yield f"{name} must be one of {', '.join(enum)}, got {_quote(value)}"
        pattern = meta.get("pattern")
        if pattern and not _pattern(pattern).fullmatch(value):
            yield f"{name} {_quote(value)} must match the pattern {pattern}"
    elif kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            yield f"{name} must be at most {meta['max']}, got {value}"
    elif kind in ("float", "double") and isinstance(value, int | float):
        if not math.isfinite(float(value)):
            yield f"{name} must be a finite number, got {value!r}"
        elif "max" in meta and value > meta["max"]:
            yield f"{name} must be at most {meta['max']}, got {value}"


def _decode_blobs(value: Any, shape: Shape) -> Any:
    """A copy of ``value`` with every blob member base64-decoded to bytes."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _decode_blobs(v, members[k]) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_decode_blobs(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _decode_blobs(v, shape.value) for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterError(
                f"{shape.name} is not valid base64 (image bytes must be base64-encoded in "
                "the JSON body)"
            ) from None
    return value
