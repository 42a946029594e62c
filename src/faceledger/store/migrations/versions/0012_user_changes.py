"""The association changes made under each intent record, so that reconciliation can say
whether an interrupted AssociateFaces / DisassociateFaces / DeleteUser was applied.

Revision ID: 0012_user_changes
Revises: 0011_sigv4_seen
Create Date: 2026-12-06

``user_changes``: one row per transaction that changed a user's faces under an intent
(``domain.audit.CURRENT_INTENT``), written in that transaction: the collection (as text: the
row outlives a deleted collection), ``kind`` (associate, disassociate, delete_user) and the
FaceIds it changed (a JSON list), never the user (the intent record names it; a deleted user
leaves no trace in the store). Looked up by intent id; rows of settled intents are pruned by the
maintenance pass (``at``).
"""

from __future__ import annotations

from alembic import op

revision = "0012_user_changes"
down_revision = "0011_sigv4_seen"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE user_changes (
    seq BIGSERIAL PRIMARY KEY,
    intent TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('associate', 'disassociate', 'delete_user')),
    face_ids TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX user_changes_by_intent ON user_changes (intent);
"""

DOWNGRADE = """
DROP TABLE user_changes;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
