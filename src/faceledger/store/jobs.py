"""Stored-video jobs and stream processors, written once for both backends (over ``Sql``).

A job row is written (durably) before ``Start…`` answers with its JobId, so an acknowledged job
is never lost: a server that stops while a job runs finds it ``IN_PROGRESS`` on its next start
and queues it again (``unfinished_jobs``), or the service marks it ``FAILED`` with the reason.
A worker *claims* a job before running it (``claim_job``: one conditional UPDATE taking its
owner id and a lease it renews while it runs), so of several server processes sharing one
database exactly one runs each job, and a job whose owner died is taken over once its lease
has run out. Results are kept as one compressed blob per job (written once, when it ends).

A stream processor row holds its definition (source, outputs, settings) and its last known
status; the running state (threads, counters) lives in the service.

``SQLiteVideoStore`` and ``PostgresVideoStore`` are this class over their own tables (made by
``SCHEMA`` on SQLite, by the migrations ``0003_video`` and ``0010_notification_outbox`` on
PostgreSQL).
"""

from __future__ import annotations

import time
from typing import Any

from faceledger.domain.errors import ResourceInUseError
from faceledger.store import rules
from faceledger.store.outbox import OutboxTables
from faceledger.store.records import IN_PROGRESS, JobRow, ProcessorRow
from faceledger.store.rules import JOB_COLUMNS, PROCESSOR_COLUMNS, decode_results, same_request
from faceledger.store.sql import Sql

_JOB = f"SELECT {JOB_COLUMNS} FROM video_jobs"
_PROCESSOR = f"SELECT {PROCESSOR_COLUMNS} FROM stream_processors"


class VideoTables(OutboxTables):
    """The ``VideoStore`` protocol over ``sql``; safe to share by threads (and processes).
    The notification outbox's half is ``store/outbox.py``."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def _one(self, statement: str, params: tuple[Any, ...]) -> Any:
        with self._sql.reading() as conn:
            return conn.execute(statement, params).fetchone()

    def _all(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        with self._sql.reading() as conn:
            return list(conn.execute(statement, params).fetchall())

    def _job(self, row: Any) -> JobRow:
        return rules.job_row(row, self._sql.decode_json)

    def _processor(self, row: Any) -> ProcessorRow:
        return rules.processor_row(row, self._sql.decode_json)

    # -- jobs ------------------------------------------------------------------------------
    def _job_of_token(self, job: JobRow) -> JobRow | None:
        row = self._one(
            f"{_JOB} WHERE principal = %s AND kind = %s AND client_token = %s",
            (job.principal, job.kind, job.client_token),
        )
        return None if row is None else self._job(row)

    def create_job(self, job: JobRow) -> JobRow:
        """Insert a new job, or return the job an earlier call with the same client token made
        (another process's included); the same token with other parameters →
        ``IdempotentParameterMismatchException``."""
        earlier = self._job_of_token(job) if job.client_token is not None else None
        if earlier is not None:
            return same_request(earlier, job)
        try:
            with self._sql.transaction() as conn:
                conn.execute(
                    "INSERT INTO video_jobs (job_id, kind, status, status_message, video, params,"
                    " job_tag, client_token, principal, caller, created_at, attempts)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rules.job_values(job, self._sql.encode_json),
                )
        except self._sql.unique_violation:  # the same token, just now (another process)
            earlier = self._job_of_token(job) if job.client_token is not None else None
            if earlier is None:  # the conflict was on job_id itself (never: ids are random)
                raise ResourceInUseError(f"the job id {job.job_id!r} is taken") from None
            return same_request(earlier, job)
        return job

    def job(self, job_id: str) -> JobRow:
        row = self._one(f"{_JOB} WHERE job_id = %s", (job_id,))
        if row is None:
            raise rules.no_job(job_id)
        return self._job(row)

    def job_counts(self) -> dict[str, int]:
        """How many jobs are in each status (IN_PROGRESS, SUCCEEDED, FAILED)."""
        rows = self._all("SELECT status, count(*) FROM video_jobs GROUP BY status", ())
        return {str(r[0]): int(r[1]) for r in rows}

    def unfinished_jobs(self) -> list[JobRow]:
        """Every job in progress, with who holds it (``claimed_by``, ``claimed_at``)."""
        rows = self._all(f"{_JOB} WHERE status = %s ORDER BY created_at", (IN_PROGRESS,))
        return [self._job(r) for r in rows]

    def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, take_from: str | None = None
    ) -> bool:
        """Take the job for ``owner`` unless another owner holds an unexpired lease on it
        (``take_from``: that owner is known to be dead; take it over)."""
        values = rules.claim_values(job_id, owner, lease_s, take_from, time.time())
        with self._sql.transaction() as conn:
            return conn.execute(rules.CLAIM_JOB_SQL, values).rowcount == 1

    def renew_claim(self, job_id: str, owner: str) -> None:
        with self._sql.transaction() as conn:
            conn.execute(
                "UPDATE video_jobs SET claimed_at = %s WHERE job_id = %s AND claimed_by = %s",
                (time.time(), job_id, owner),
            )

    def release_claim(self, job_id: str, owner: str) -> bool:
        """Hand back a job ``owner`` holds and has not finished (a stopping process): its lease
        is cleared, so any worker takes it at once. Whether it held one."""
        with self._sql.transaction() as conn:
            cur = conn.execute(
                "UPDATE video_jobs SET claimed_by = NULL, claimed_at = NULL"
                " WHERE job_id = %s AND claimed_by = %s AND status = %s",
                (job_id, owner, IN_PROGRESS),
            )
            return bool(cur.rowcount == 1)

    def finish_job(
        self,
        job_id: str,
        *,
        status: str,
        message: str = "",
        metadata: dict[str, Any] | None = None,
        results: list[Any] | None = None,
    ) -> None:
        encode = self._sql.encode_json
        values = rules.finish_values(status, message, time.time(), metadata, results, encode)
        with self._sql.transaction() as conn:
            conn.execute(rules.FINISH_JOB_SQL, (*values, job_id))

    def job_results(self, job_id: str) -> list[Any]:
        row = self._one("SELECT results FROM video_jobs WHERE job_id = %s", (job_id,))
        if row is None:
            raise rules.no_job(job_id)
        return decode_results(row[0])

    # -- stream processors -------------------------------------------------------------------
    def create_processor(self, processor: ProcessorRow) -> None:
        try:
            with self._sql.transaction() as conn:
                conn.execute(
                    f"INSERT INTO stream_processors ({PROCESSOR_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rules.processor_values(processor, self._sql.encode_json),
                )
        except self._sql.unique_violation:
            raise rules.processor_exists(processor.name) from None

    def processor(self, name: str) -> ProcessorRow:
        row = self._one(f"{_PROCESSOR} WHERE name = %s", (name,))
        if row is None:
            raise rules.no_processor(name)
        return self._processor(row)

    def list_processors(self, *, after: str | None, limit: int) -> list[ProcessorRow]:
        rows = self._all(
            f"{_PROCESSOR} WHERE name > %s ORDER BY name LIMIT %s", (after or "", limit)
        )
        return [self._processor(r) for r in rows]

    def update_processor(self, name: str, **changes: Any) -> ProcessorRow:
        """Set columns of a processor (``status``, ``status_message``, ``settings``, ``extra``,
        ``outputs``, ``source``, ``owner``)."""
        sets, values = rules.processor_updates(changes, "%s", self._sql.encode_json)
        with self._sql.transaction() as conn:
            cur = conn.execute(
                f"UPDATE stream_processors SET {sets}, updated_at = %s WHERE name = %s",
                (*values, time.time(), name),
            )
            if cur.rowcount == 0:
                raise rules.no_processor(name)
        return self.processor(name)

    def delete_processor(self, name: str) -> None:
        with self._sql.transaction() as conn:
            if conn.execute("DELETE FROM stream_processors WHERE name = %s", (name,)).rowcount == 0:
                raise rules.no_processor(name)
