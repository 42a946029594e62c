"""Stored-video jobs and stream processors: two tables of the store's SQLite file.

A job row is written (durably) before ``Start…`` answers with its JobId, so an acknowledged job
is never lost: a server that stops while a job runs finds it ``IN_PROGRESS`` on its next start
and queues it again (``unfinished_jobs``), or the service marks it ``FAILED`` with the reason.
A worker *claims* a job before running it (``claim_job``: its owner id and a lease it renews
while it runs), so several server processes sharing one database never run a job twice, and a
job whose owner died is taken over once its lease has run out.
Results are kept as one compressed blob per job (written once, when the job succeeds).

A stream processor row holds its definition (source, outputs, settings) and its last known
status; the running state (threads, counters) lives in the service.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceledger.domain.errors import (
    IdempotentParameterMismatchError,
    ResourceInUseError,
    ResourceNotFoundError,
)
from faceledger.store.sqlite.connections import Connections

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

IN_PROGRESS, SUCCEEDED, FAILED = "IN_PROGRESS", "SUCCEEDED", "FAILED"


@dataclass(frozen=True)
class JobRow:
    job_id: str
    kind: str  # "faces" | "search" | "persons"
    status: str
    status_message: str
    video: dict[str, Any]
    params: dict[str, Any]
    job_tag: str | None
    client_token: str | None
    principal: str
    caller: dict[str, Any]
    created_at: float
    finished_at: float | None
    metadata: dict[str, Any] | None
    attempts: int
    claimed_by: str | None = None
    claimed_at: float | None = None


@dataclass(frozen=True)
class ProcessorRow:
    name: str
    source: str
    outputs: dict[str, Any]
    settings: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "STOPPED"
    status_message: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    owner: str | None = None  # the process running it (while RUNNING)


UPDATABLE_PROCESSOR_COLUMNS = frozenset(
    {"status", "status_message", "settings", "extra", "outputs", "source", "owner"}
)


def check_processor_changes(changes: dict[str, Any]) -> None:
    if not set(changes) <= UPDATABLE_PROCESSOR_COLUMNS:
        raise ValueError(f"cannot update {sorted(set(changes) - UPDATABLE_PROCESSOR_COLUMNS)}")


def same_request(earlier: JobRow, job: JobRow) -> JobRow:
    """``earlier`` (the job a ClientRequestToken made), if ``job`` asks for the same thing;
    else ``IdempotentParameterMismatchException``."""
    if (earlier.video, earlier.params, earlier.job_tag) != (job.video, job.params, job.job_tag):
        raise IdempotentParameterMismatchError(
            f"ClientRequestToken {job.client_token!r} was used for a different request "
            f"(job {earlier.job_id})"
        )
    return earlier


def encode_results(results: list[Any]) -> bytes:
    return zlib.compress(json.dumps(results, separators=(",", ":")).encode(), 6)


def decode_results(blob: bytes | None) -> list[Any]:
    out: list[Any] = json.loads(zlib.decompress(blob)) if blob is not None else []
    return out


_JOB_COLUMNS = (
    "job_id, kind, status, status_message, video, params, job_tag, client_token, principal,"
    " caller, created_at, finished_at, metadata, attempts"
)
_SELECT_JOB = f"SELECT {_JOB_COLUMNS}, claimed_by, claimed_at FROM video_jobs"


def _job(row: sqlite3.Row) -> JobRow:
    return JobRow(
        job_id=row["job_id"],
        kind=row["kind"],
        status=row["status"],
        status_message=row["status_message"],
        video=json.loads(row["video"]),
        params=json.loads(row["params"]),
        job_tag=row["job_tag"],
        client_token=row["client_token"],
        principal=row["principal"],
        caller=json.loads(row["caller"]),
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        metadata=json.loads(row["metadata"]) if row["metadata"] else None,
        attempts=row["attempts"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
    )


def _processor(row: sqlite3.Row) -> ProcessorRow:
    return ProcessorRow(
        name=row["name"],
        source=row["source"],
        outputs=json.loads(row["outputs"]),
        settings=json.loads(row["settings"]),
        extra=json.loads(row["extra"]),
        status=row["status"],
        status_message=row["status_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        owner=row["owner"],
    )


class SQLiteVideoStore:
    """Jobs and stream processors in the store's SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        self._connections = Connections(Path(path))
        with self._connections.write_lock:
            self._connections.db().executescript(SCHEMA)

    def close(self) -> None:
        self._connections.close()

    # -- jobs ------------------------------------------------------------------------------
    def create_job(self, job: JobRow) -> JobRow:
        """Insert a new job, or return the job an earlier call with the same client token made.

        The same token with different parameters → ``IdempotentParameterMismatchException``.
        """
        with self._connections.tx() as db:
            if job.client_token is not None:
                row = db.execute(
                    f"{_SELECT_JOB} WHERE principal = ? AND kind = ? AND client_token = ?",
                    (job.principal, job.kind, job.client_token),
                ).fetchone()
                if row is not None:
                    return same_request(_job(row), job)
            db.execute(
                f"INSERT INTO video_jobs ({_JOB_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id,
                    job.kind,
                    job.status,
                    job.status_message,
                    json.dumps(job.video, sort_keys=True),
                    json.dumps(job.params, sort_keys=True),
                    job.job_tag,
                    job.client_token,
                    job.principal,
                    json.dumps(job.caller, sort_keys=True),
                    job.created_at,
                    job.finished_at,
                    None,
                    job.attempts,
                ),
            )
        return job

    def job(self, job_id: str) -> JobRow:
        row = (
            self._connections.db().execute(f"{_SELECT_JOB} WHERE job_id = ?", (job_id,)).fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"the job {job_id!r} does not exist")
        return _job(row)

    def job_counts(self) -> dict[str, int]:
        """How many jobs are in each status (IN_PROGRESS, SUCCEEDED, FAILED)."""
        rows = self._connections.db().execute(
            "SELECT status, count(*) FROM video_jobs GROUP BY status"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def unfinished_jobs(self) -> list[JobRow]:
        """Every job in progress, with who holds it (``claimed_by``, ``claimed_at``)."""
        rows = self._connections.db().execute(
            f"{_SELECT_JOB} WHERE status = ? ORDER BY created_at", (IN_PROGRESS,)
        )
        return [_job(r) for r in rows]

    def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, take_from: str | None = None
    ) -> bool:
        """Take the job for ``owner`` unless another owner holds an unexpired lease on it
        (``take_from``: that owner is known to be dead; take it over)."""
        now = time.time()
        with self._connections.tx() as db:
            cur = db.execute(
                "UPDATE video_jobs SET attempts = attempts + 1, claimed_by = ?, claimed_at = ?"
                " WHERE job_id = ? AND status = ? AND (claimed_by IS NULL OR claimed_by = ?"
                " OR claimed_by = ? OR claimed_at < ?)",
                (owner, now, job_id, IN_PROGRESS, owner, take_from or owner, now - lease_s),
            )
            return cur.rowcount == 1

    def renew_claim(self, job_id: str, owner: str) -> None:
        with self._connections.tx() as db:
            db.execute(
                "UPDATE video_jobs SET claimed_at = ? WHERE job_id = ? AND claimed_by = ?",
                (time.time(), job_id, owner),
            )

    def finish_job(
        self,
        job_id: str,
        *,
        status: str,
        message: str = "",
        metadata: dict[str, Any] | None = None,
        results: list[Any] | None = None,
    ) -> None:
        blob = encode_results(results) if results is not None else None
        with self._connections.tx() as db:
            db.execute(
                "UPDATE video_jobs SET status = ?, status_message = ?, finished_at = ?,"
                " metadata = ?, results = ? WHERE job_id = ?",
                (
                    status,
                    message,
                    time.time(),
                    json.dumps(metadata) if metadata is not None else None,
                    blob,
                    job_id,
                ),
            )

    def job_results(self, job_id: str) -> list[Any]:
        row = (
            self._connections.db()
            .execute("SELECT results FROM video_jobs WHERE job_id = ?", (job_id,))
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"the job {job_id!r} does not exist")
        return decode_results(row["results"])

    # -- stream processors -------------------------------------------------------------------
    def create_processor(self, processor: ProcessorRow) -> None:
        try:
            with self._connections.tx() as db:
                db.execute(
                    "INSERT INTO stream_processors (name, source, outputs, settings, extra,"
                    " status, status_message, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        processor.name,
                        processor.source,
                        json.dumps(processor.outputs, sort_keys=True),
                        json.dumps(processor.settings, sort_keys=True),
                        json.dumps(processor.extra, sort_keys=True),
                        processor.status,
                        processor.status_message,
                        processor.created_at,
                        processor.updated_at,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ResourceInUseError(
                f"a stream processor named {processor.name!r} already exists"
            ) from None

    def processor(self, name: str) -> ProcessorRow:
        row = (
            self._connections.db()
            .execute("SELECT * FROM stream_processors WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"the stream processor {name!r} does not exist")
        return _processor(row)

    def list_processors(self, *, after: str | None, limit: int) -> list[ProcessorRow]:
        rows = self._connections.db().execute(
            "SELECT * FROM stream_processors WHERE name > ? ORDER BY name LIMIT ?",
            (after or "", limit),
        )
        return [_processor(r) for r in rows]

    def update_processor(self, name: str, **changes: Any) -> ProcessorRow:
        """Set columns of a processor (``status``, ``status_message``, ``settings``, ``extra``)."""
        check_processor_changes(changes)
        sets, values = [], []
        for column, value in changes.items():
            sets.append(f"{column} = ?")
            values.append(json.dumps(value, sort_keys=True) if isinstance(value, dict) else value)
        with self._connections.tx() as db:
            cur = db.execute(
                f"UPDATE stream_processors SET {', '.join(sets)}, updated_at = ? WHERE name = ?",
                (*values, time.time(), name),
            )
            if cur.rowcount == 0:
                raise ResourceNotFoundError(f"the stream processor {name!r} does not exist")
        return self.processor(name)

    def delete_processor(self, name: str) -> None:
        with self._connections.tx() as db:
            cur = db.execute("DELETE FROM stream_processors WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise ResourceNotFoundError(f"the stream processor {name!r} does not exist")
