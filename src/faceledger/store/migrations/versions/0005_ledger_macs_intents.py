"""Per-record MACs in the ledger, open intents, and intents in the face change log.

Revision ID: 0005_ledger_macs_intents
Revises: 0004_face_changes
Create Date: 2026-12-06

- ``ledger.records.mac``: each record's MAC under the ledger key (``faceledger.audit.keyring``);
  NULL for records written before this revision.
- ``ledger.open_intents``: intent records whose outcome is not recorded yet (a biometric change
  writes an intent before the store changes and an outcome after; see the gateway). Rows are
  inserted and deleted in the ledger's own transactions.
- ``face_changes.intent``: the intent each change was made under, so that an intent left
  without an outcome (a crash, a failed ledger write) is reconciled at start-up against what
  the store actually committed. (Row ids only, as before: a deleted face leaves no id here.)
"""

from __future__ import annotations

from alembic import op

revision = "0005_ledger_macs_intents"
down_revision = "0004_face_changes"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE ledger.records ADD COLUMN mac BYTEA;

CREATE TABLE ledger.open_intents (
    intent_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    owner TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL
);

ALTER TABLE face_changes ADD COLUMN intent TEXT;
CREATE INDEX face_changes_by_intent ON face_changes (intent) WHERE intent IS NOT NULL;
"""

DOWNGRADE = """
DROP INDEX face_changes_by_intent;
ALTER TABLE face_changes DROP COLUMN intent;
DROP TABLE ledger.open_intents;
ALTER TABLE ledger.records DROP COLUMN mac;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
