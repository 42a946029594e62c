"""The notification outbox of the video store, written once for both backends (over ``Sql``).

A job's completion notification is written here when the job ends, before the first attempt
to post it, so a notification still undelivered when the server stops is delivered after it
starts again (by it or by another server on the same database). A sender *claims* a row for
one attempt (a conditional UPDATE with a short lease, as jobs are claimed), then deletes it
once delivered, or counts the failed attempt and sets the next one; after the last attempt the
row stays, ``GIVEN_UP``, with the last error. ``release_notifications`` hands a stopping
process's claims back at once.

Tables: ``notification_outbox`` (``SCHEMA`` of ``store/sqlite/video.py``; on PostgreSQL the
migration ``0010_notification_outbox``).
"""

from __future__ import annotations

from typing import Any

from faceledger.store.records import GIVEN_UP, PENDING, OutboxRow
from faceledger.store.sql import Sql

OUTBOX_COLUMNS = (
    "message_id, job_id, topic_arn, url, body, created_at, next_attempt_at, attempts, status,"
    " last_error, claimed_by"
)
_ROWS = f"SELECT {OUTBOX_COLUMNS} FROM notification_outbox"


def _row(row: Any) -> OutboxRow:
    return OutboxRow(
        message_id=str(row[0]),
        job_id=str(row[1]),
        topic_arn=str(row[2]),
        url=str(row[3]),
        body=str(row[4]),
        created_at=float(row[5]),
        next_attempt_at=float(row[6]),
        attempts=int(row[7]),
        status=str(row[8]),
        last_error=str(row[9]),
        claimed_by=None if row[10] is None else str(row[10]),
    )


class OutboxTables:
    """The outbox half of the ``VideoStore`` protocol over ``self._sql``."""

    _sql: Sql

    def add_notification(self, row: OutboxRow) -> None:
        """Keep ``row`` until it is delivered or given up (a second add of one message is
        ignored)."""
        values = (
            row.message_id, row.job_id, row.topic_arn, row.url, row.body, row.created_at,
            row.next_attempt_at, row.attempts, row.status, row.last_error, None,
        )  # fmt: skip
        try:
            with self._sql.transaction() as conn:
                conn.execute(
                    f"INSERT INTO notification_outbox ({OUTBOX_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    values,
                )
        except self._sql.unique_violation:
            pass

    def notifications(self, *, status: str | None = None) -> list[OutboxRow]:
        """The outbox's rows (of one ``status``), oldest first."""
        where, params = ("WHERE status = %s", (status,)) if status else ("", ())
        with self._sql.reading() as conn:
            rows = conn.execute(f"{_ROWS} {where} ORDER BY created_at, message_id", params)
            return [_row(r) for r in rows.fetchall()]

    def due_notifications(self, now_s: float, lease_s: float, limit: int) -> list[OutboxRow]:
        """Pending rows whose next attempt is due and that no sender holds (its claim is older
        than ``lease_s``), the earliest first."""
        with self._sql.reading() as conn:
            rows = conn.execute(
                f"{_ROWS} WHERE status = %s AND next_attempt_at <= %s"
                " AND (claimed_by IS NULL OR claimed_at < %s)"
                " ORDER BY next_attempt_at, message_id LIMIT %s",
                (PENDING, now_s, now_s - lease_s, limit),
            )
            return [_row(r) for r in rows.fetchall()]

    def next_notification_at(self) -> float | None:
        """When the earliest pending row is due (epoch seconds); None with none pending."""
        with self._sql.reading() as conn:
            row = conn.execute(
                "SELECT min(next_attempt_at) FROM notification_outbox WHERE status = %s",
                (PENDING,),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def claim_notification(self, message_id: str, owner: str, now_s: float, lease_s: float) -> bool:
        """Take a pending row for one attempt unless another sender holds an unexpired claim."""
        with self._sql.transaction() as conn:
            cur = conn.execute(
                "UPDATE notification_outbox SET claimed_by = %s, claimed_at = %s"
                " WHERE message_id = %s AND status = %s"
                " AND (claimed_by IS NULL OR claimed_by = %s OR claimed_at < %s)",
                (owner, now_s, message_id, PENDING, owner, now_s - lease_s),
            )
            return bool(cur.rowcount == 1)

    def notification_delivered(self, message_id: str) -> None:
        with self._sql.transaction() as conn:
            conn.execute("DELETE FROM notification_outbox WHERE message_id = %s", (message_id,))

    def notification_attempt_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: float | None, error: str
    ) -> None:
        """Count a failed attempt and release the claim: the next one at ``next_attempt_at``,
        or none (None: the row is ``GIVEN_UP``)."""
        status = PENDING if next_attempt_at is not None else GIVEN_UP
        with self._sql.transaction() as conn:
            conn.execute(
                "UPDATE notification_outbox SET attempts = %s, next_attempt_at = %s,"
                " status = %s, last_error = %s, claimed_by = NULL, claimed_at = NULL"
                " WHERE message_id = %s",
                (attempts, next_attempt_at or 0.0, status, error[:1000], message_id),
            )

    def release_notifications(self, owner: str) -> int:
        """Hand back every claim ``owner`` holds (a stopping process); how many."""
        with self._sql.transaction() as conn:
            cur = conn.execute(
                "UPDATE notification_outbox SET claimed_by = NULL, claimed_at = NULL"
                " WHERE claimed_by = %s",
                (owner,),
            )
            return int(cur.rowcount)
