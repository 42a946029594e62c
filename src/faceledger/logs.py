"""Log output: JSON lines for collectors, or a human format for terminals (``log_format``).

Every record becomes one line. The JSON form holds ``time`` (ISO 8601 UTC), ``level``,
``logger``, ``message`` and the structured fields a record carries (``request_id``,
``principal``, ``operation``, ``outcome``, ``status``, ``duration_ms``, …; see
``faceledger.api.access_log``). The human form is ``time level logger: message k=v …``.

What never reaches a log: credentials and image bytes. The formatters redact bearer tokens,
SigV4 signatures, ``secret``/``password``/``key``-like ``name=value`` pairs and long base64
runs from every message and field, replace bytes with their length, and cut messages at
``MAX_MESSAGE_CHARS`` — a belt over the braces of never logging request bodies or headers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal

LogFormat = Literal["auto", "json", "human"]

MAX_MESSAGE_CHARS = 2000
FIELDS = ("request_id", "principal", "operation", "outcome", "status", "method", "duration_ms")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_REDACTIONS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s,;\"']+"), r"\1 [redacted]"),
    (re.compile(r"(?i)(signature=)[0-9a-f]+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)\b([\w-]*(?:secret|password|passwd|token|api[_-]?key)[\w-]*)([=:]\s*)\S+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"[A-Za-z0-9+/]{200,}={0,2}"), "[base64 redacted]"),
)


def redact(text: str) -> str:
    """``text`` without credentials or base64 blobs, at most ``MAX_MESSAGE_CHARS`` long."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"… [{len(text) - MAX_MESSAGE_CHARS} chars cut]"
    return text


def _safe(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: _safe(v) for k, v in record.__dict__.items() if k not in _STANDARD}


def _iso(created: float) -> str:
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **_extras(record),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class HumanFormatter(logging.Formatter):
    """``time level logger: message k=v …`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        keys = [k for k in FIELDS if k in extras] + sorted(set(extras) - set(FIELDS))
        fields = " ".join(f"{k}={extras[k]}" for k in keys)
        line = f"{_iso(record.created)} {record.levelname:<7} {record.name}: "
        line += redact(record.getMessage()) + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def formatter(log_format: LogFormat, stream: Any = None) -> logging.Formatter:
    """The formatter for ``log_format``; "auto" is human on a terminal, JSON otherwise."""
    if log_format == "auto":
        stream = stream if stream is not None else sys.stderr
        log_format = "human" if getattr(stream, "isatty", lambda: False)() else "json"
    return JsonFormatter() if log_format == "json" else HumanFormatter()


def configure_logging(level: str, log_format: LogFormat = "auto") -> None:
    """Send every log record (uvicorn's too) to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, sys.stderr))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
