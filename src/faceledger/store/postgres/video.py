"""Stored-video jobs and stream processors in PostgreSQL: ``SQLiteVideoStore``'s API and guarantees.

The tables come from the migrations (``0003_video``). A job's row is committed before its
JobId is returned; ``claim_job`` is one conditional UPDATE, so of several server processes
sharing the database exactly one runs each job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from faceledger.domain.errors import (
    ResourceInUseError,
    ResourceNotFoundError,
)
from faceledger.store.postgres.pool import open_pool
from faceledger.store.sqlite.video import (
    IN_PROGRESS,
    JobRow,
    ProcessorRow,
    check_processor_changes,
    decode_results,
    encode_results,
    same_request,
)

POOL_SIZE = 4

_JOB = (
    "SELECT job_id, kind, status, status_message, video, params, job_tag, client_token,"
    " principal, caller, created_at, finished_at, metadata, attempts, claimed_by, claimed_at"
    " FROM video_jobs"
)
_PROCESSOR = (
    "SELECT name, source, outputs, settings, extra, status, status_message, created_at,"
    " updated_at, owner FROM stream_processors"
)


def _job(row: Sequence[Any]) -> JobRow:
    return JobRow(
        job_id=row[0],
        kind=row[1],
        status=row[2],
        status_message=row[3],
        video=row[4],
        params=row[5],
        job_tag=row[6],
        client_token=row[7],
        principal=row[8],
        caller=row[9],
        created_at=float(row[10]),
        finished_at=None if row[11] is None else float(row[11]),
        metadata=row[12],
        attempts=int(row[13]),
        claimed_by=row[14],
        claimed_at=None if row[15] is None else float(row[15]),
    )


def _processor(row: Sequence[Any]) -> ProcessorRow:
    return ProcessorRow(
        name=row[0],
        source=row[1],
        outputs=row[2],
        settings=row[3],
        extra=row[4],
        status=row[5],
        status_message=row[6],
        created_at=float(row[7]),
        updated_at=float(row[8]),
        owner=row[9],
    )


class PostgresVideoStore:
    """Jobs and stream processors in PostgreSQL; safe to share by threads and processes."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self._pool = open_pool(url, size=pool_size, name="faceledger-video")

    def close(self) -> None:
        self._pool.close()

    # -- jobs ------------------------------------------------------------------------------
    def create_job(self, job: JobRow) -> JobRow:
        """Insert a new job, or return the job an earlier call with the same client token made
        (another process's included); the same token with other parameters → mismatch."""
        with self._pool.connection() as conn:
            inserted = conn.execute(
                "INSERT INTO video_jobs (job_id, kind, status, status_message, video, params,"
                " job_tag, client_token, principal, caller, created_at, attempts)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING job_id",
                (
                    job.job_id,
                    job.kind,
                    job.status,
                    job.status_message,
                    Jsonb(job.video),
                    Jsonb(job.params),
                    job.job_tag,
                    job.client_token,
                    job.principal,
                    Jsonb(job.caller),
                    job.created_at,
                    job.attempts,
                ),
            ).fetchone()
            if inserted is not None:
                return job
            row = conn.execute(
                f"{_JOB} WHERE principal = %s AND kind = %s AND client_token = %s",
                (job.principal, job.kind, job.client_token),
            ).fetchone()
        if row is None:  # the conflict was on job_id itself (never: ids are random)
            raise ResourceInUseError(f"the job id {job.job_id!r} is taken")
        return same_request(_job(row), job)

    def job(self, job_id: str) -> JobRow:
        with self._pool.connection() as conn:
            row = conn.execute(f"{_JOB} WHERE job_id = %s", (job_id,)).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"the job {job_id!r} does not exist")
        return _job(row)

    def job_counts(self) -> dict[str, int]:
        """How many jobs are in each status (IN_PROGRESS, SUCCEEDED, FAILED)."""
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT status, count(*) FROM video_jobs GROUP BY status")
            return {str(r[0]): int(r[1]) for r in rows.fetchall()}

    def unfinished_jobs(self) -> list[JobRow]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"{_JOB} WHERE status = %s ORDER BY created_at", (IN_PROGRESS,)
            ).fetchall()
        return [_job(r) for r in rows]

    def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, take_from: str | None = None
    ) -> bool:
        now = time.time()
        with self._pool.connection() as conn:
            cur = conn.execute(
                "UPDATE video_jobs SET attempts = attempts + 1, claimed_by = %s, claimed_at = %s"
                " WHERE job_id = %s AND status = %s AND (claimed_by IS NULL OR claimed_by = %s"
                " OR claimed_by = %s OR claimed_at < %s)",
                (owner, now, job_id, IN_PROGRESS, owner, take_from or owner, now - lease_s),
            )
            return cur.rowcount == 1

    def renew_claim(self, job_id: str, owner: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE video_jobs SET claimed_at = %s WHERE job_id = %s AND claimed_by = %s",
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
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE video_jobs SET status = %s, status_message = %s, finished_at = %s,"
                " metadata = %s, results = %s WHERE job_id = %s",
                (
                    status,
                    message,
                    time.time(),
                    Jsonb(metadata) if metadata is not None else None,
                    blob,
                    job_id,
                ),
            )

    def job_results(self, job_id: str) -> list[Any]:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT results FROM video_jobs WHERE job_id = %s", (job_id,)
            ).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"the job {job_id!r} does not exist")
        return decode_results(row[0])

    # -- stream processors -------------------------------------------------------------------
    def create_processor(self, processor: ProcessorRow) -> None:
        try:
            with self._pool.connection() as conn:
                conn.execute(
                    "INSERT INTO stream_processors (name, source, outputs, settings, extra,"
                    " status, status_message, created_at, updated_at, owner)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        processor.name,
                        processor.source,
                        Jsonb(processor.outputs),
                        Jsonb(processor.settings),
                        Jsonb(processor.extra),
                        processor.status,
                        processor.status_message,
                        processor.created_at,
                        processor.updated_at,
                        processor.owner,
                    ),
                )
        except pg_errors.UniqueViolation:
            raise ResourceInUseError(
                f"a stream processor named {processor.name!r} already exists"
            ) from None

    def processor(self, name: str) -> ProcessorRow:
        with self._pool.connection() as conn:
            row = conn.execute(f"{_PROCESSOR} WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"the stream processor {name!r} does not exist")
        return _processor(row)

    def list_processors(self, *, after: str | None, limit: int) -> list[ProcessorRow]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"{_PROCESSOR} WHERE name > %s ORDER BY name LIMIT %s", (after or "", limit)
            ).fetchall()
        return [_processor(r) for r in rows]

    def update_processor(self, name: str, **changes: Any) -> ProcessorRow:
        check_processor_changes(changes)
        sets, values = [], []
        for column, value in changes.items():
            sets.append(f"{column} = %s")
            values.append(Jsonb(value) if isinstance(value, dict) else value)
        with self._pool.connection() as conn:
            cur = conn.execute(
                f"UPDATE stream_processors SET {', '.join(sets)}, updated_at = %s WHERE name = %s",
                (*values, time.time(), name),
            )
            if cur.rowcount == 0:
                raise ResourceNotFoundError(f"the stream processor {name!r} does not exist")
        return self.processor(name)

    def delete_processor(self, name: str) -> None:
        with self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM stream_processors WHERE name = %s", (name,))
            if cur.rowcount == 0:
                raise ResourceNotFoundError(f"the stream processor {name!r} does not exist")
