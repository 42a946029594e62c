"""The outbox of stored-video jobs' completion notifications.

Revision ID: 0010_notification_outbox
Revises: 0009_lead_probes
Create Date: 2026-12-06

- ``notification_outbox``: one row per completion notification not yet delivered, written when
  the job ends (``store/outbox.py``): the exact body posted, the target URL and topic, the
  attempts made and when the next is due, who holds it for an attempt (``claimed_by``, a short
  lease), and ``status`` PENDING, or GIVEN_UP after the last attempt (with ``last_error``). A
  delivered notification's row is deleted. Undelivered notifications outlive a restart.

Self-contained: it creates one table and its index and touches nothing else.
"""

from __future__ import annotations

from alembic import op

revision = "0010_notification_outbox"
down_revision = "0009_lead_probes"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE notification_outbox (
    message_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    topic_arn TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    claimed_by TEXT,
    claimed_at DOUBLE PRECISION
);
CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
"""

DOWNGRADE = """
DROP TABLE notification_outbox;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
