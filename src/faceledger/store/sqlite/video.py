"""Stored-video jobs, stream processors and the notification outbox: tables of the store's
SQLite file.

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
CREATE TABLE IF NOT EXISTS notification_outbox (
    message_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    topic_arn TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    claimed_by TEXT,
    claimed_at REAL
);
CREATE INDEX IF NOT EXISTS notification_outbox_due
    ON notification_outbox(status, next_attempt_at);
"""


class SQLiteVideoStore(SchemaStore, VideoTables):
    """Jobs and stream processors in the store's SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        super().__init__(self._open_tables(path, SCHEMA))
