"""Stored-video jobs and stream processors: two tables of the store's SQLite file.

What the store does and guarantees is written once for both backends (``store/jobs.py``); this
module makes the tables.
"""

from __future__ import annotations

from pathlib import Path

from faceledger.store.jobs import VideoTables
from faceledger.store.records import FAILED, IN_PROGRESS, SUCCEEDED, JobRow, ProcessorRow
from faceledger.store.rules import (
    check_processor_changes,
    decode_results,
    encode_results,
    same_request,
)
from faceledger.store.sqlite.connections import SchemaStore

__all__ = [  # importable from here too, as before ``store/records.py`` and ``store/rules.py``
    "FAILED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "JobRow",
    "ProcessorRow",
    "SQLiteVideoStore",
    "check_processor_changes",
    "decode_results",
    "encode_results",
    "same_request",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS video_jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    video TEXT NOT NULL,
    params TEXT NOT NULL,
    job_tag TEXT,
    client_token TEXT,
    principal TEXT NOT NULL,
    caller TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    metadata TEXT,
    results BLOB,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS video_jobs_token
    ON video_jobs(principal, kind, client_token) WHERE client_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS video_jobs_status ON video_jobs(status);
CREATE TABLE IF NOT EXISTS stream_processors (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    outputs TEXT NOT NULL,
    settings TEXT NOT NULL,
    extra TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    owner TEXT
);
"""


class SQLiteVideoStore(SchemaStore, VideoTables):
    """Jobs and stream processors in the store's SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        super().__init__(self._open_tables(path, SCHEMA))
