"""Ledger records as JSON lines or CSV, for auditors and their tools.

JSON lines are the faithful format: one object per record, every field as recorded, plus
``time_utc`` (ISO 8601) for people. CSV is for spreadsheets: one row per record with fixed
columns; lists are joined with ``;``, ``result`` is a compact JSON string, and a text cell
that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
carriage return) is prefixed with ``'`` (OWASP's advice against CSV injection: ``purpose`` and
``case_reference`` are free text typed by callers).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from faceledger.audit.ledger import LedgerEntry

FORMATS: tuple[str, ...] = ("jsonl", "csv")

CSV_COLUMNS: tuple[str, ...] = (
    "seq",
    "time",
    "time_utc",
    "operation",
    "principal",
    "key_id",
    "roles",
    "source",
    "purpose",
    "case_reference",
    "collection_id",
    "probe_sha256",
    "outcome",
    "result",
    "request_id",
    "kind",
    "digest",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def iso_utc(epoch_s: float) -> str:
    """``2025-01-31T12:00:00.123456Z``."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def entry_record(entry: LedgerEntry) -> dict[str, Any]:
    """One record as a flat dict: ``seq``, ``time``, ``time_utc``, ``digest`` and its content."""
    return {
        "seq": entry.seq,
        "time": entry.time,
        "time_utc": iso_utc(entry.time),
        "digest": entry.digest,
        **{k: v for k, v in entry.payload.items() if k != "time"},
    }


def write_jsonl(entries: Iterable[LedgerEntry], out: TextIO) -> int:
    """Write one JSON object per line; returns how many."""
    count = 0
    for entry in entries:
        out.write(json.dumps(entry_record(entry), ensure_ascii=False) + "\n")
        count += 1
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        text = ";".join(str(v) for v in value)
    elif isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(value, str):
        text = value
    else:
        return str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def write_csv(entries: Iterable[LedgerEntry], out: TextIO) -> int:
    """Write a header and one row per record (columns ``CSV_COLUMNS``); returns how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in entries:
        record = entry_record(entry)
        writer.writerow([_cell(record.get(column)) for column in CSV_COLUMNS])
        count += 1
    return count


def write(entries: Iterable[LedgerEntry], out: TextIO, fmt: str) -> int:
    """Write ``entries`` in ``fmt`` (``jsonl`` or ``csv``); returns how many records."""
    if fmt == "jsonl":
        return write_jsonl(entries, out)
    if fmt == "csv":
        return write_csv(entries, out)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
