"""The keys of verified SigV4 requests, shared by every server process (the replay check).

Revision ID: 0011_sigv4_seen
Revises: 0010_notification_outbox
Create Date: 2026-12-06

- ``sigv4_seen``: one row per accepted Rekognition request, keyed by the SHA-256 of its
  signature and the SDK's invocation headers (``services/replays.py``), until its signature
  expires (``expires_at``, epoch seconds); ``replays`` counts how often it came back. No index
  on ``expires_at``: the maintenance pass's purge scans a table of at most a few minutes of
  requests, and every request's INSERT stays one index write.
- ``sigv4_horizon``: one row, the cut-off of the latest purge; a key that expires at or before
  it is refused as too old to be checked (its row may be gone).
"""

from __future__ import annotations

from alembic import op

revision = "0011_sigv4_seen"
down_revision = "0010_notification_outbox"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE sigv4_seen (
    key_sha256 BYTEA PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL,
    replays INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sigv4_horizon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    purged_before DOUBLE PRECISION NOT NULL
);
INSERT INTO sigv4_horizon (id, purged_before) VALUES (1, 0);
"""

DOWNGRADE = """
DROP TABLE sigv4_horizon;
DROP TABLE sigv4_seen;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
