"""Encrypted face crops kept for review (a collection policy's ``keep_face_crops``).

Revision ID: 0008_face_crops
Revises: 0007_leads
Create Date: 2026-12-06

- ``face_crops``: one row per face whose collection keeps crops: ``sealed`` is ``nonce ||
  AES-256-GCM ciphertext`` (the key is a file outside the data folder, never in the
  database). Written and deleted with the face's row; a collection's go with it (cascade).
  ``STORAGE EXTERNAL``: out of line, never compressed (ciphertext does not compress).
"""

from __future__ import annotations

from alembic import op

revision = "0008_face_crops"
down_revision = "0007_leads"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE face_crops (
    collection_pk BIGINT NOT NULL REFERENCES collections (collection_pk) ON DELETE CASCADE,
    face_id TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_pk, face_id)
);
ALTER TABLE face_crops ALTER COLUMN sealed SET STORAGE EXTERNAL;
"""

DOWNGRADE = """
DROP TABLE face_crops;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
