"""Stored-video jobs and stream processors (the tables of ``faceledger.store.sqlite.video``).

Revision ID: 0003_video
Revises: 0002_ledger
Create Date: 2026-11-26

Jobs are claimed by one worker at a time (``claimed_by``/``claimed_at``, a lease), so several
API processes sharing this database never run a job twice; results are one compressed blob per
job (zlib-compressed JSON).
"""

from __future__ import annotations

from alembic import op

revision = "0003_video"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE video_jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    video JSONB NOT NULL,
    params JSONB NOT NULL,
    job_tag TEXT,
    client_token TEXT,
    principal TEXT NOT NULL,
    caller JSONB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    metadata JSONB,
    results BYTEA,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_at DOUBLE PRECISION
);
CREATE UNIQUE INDEX video_jobs_token ON video_jobs (principal, kind, client_token)
    WHERE client_token IS NOT NULL;
CREATE INDEX video_jobs_status ON video_jobs (status);

CREATE TABLE stream_processors (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    outputs JSONB NOT NULL,
    settings JSONB NOT NULL,
    extra JSONB NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    owner TEXT
);
"""

DOWNGRADE = """
DROP TABLE stream_processors;
DROP TABLE video_jobs;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
