"""The size of the image each face was indexed from.

Revision ID: 0006_face_image_size
Revises: 0005_ledger_macs_intents
Create Date: 2026-12-06

- ``faces.image_width_px`` / ``faces.image_height_px``: the source image's width and height in
  pixels after EXIF orientation, so a stored face's ratio box converts back to pixels without
  the image. NULL for faces indexed before this revision (the native API then answers as it
  did before: pixels only where the uploaded image is at hand).
"""

from __future__ import annotations

from alembic import op

revision = "0006_face_image_size"
down_revision = "0005_ledger_macs_intents"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE faces ADD COLUMN image_width_px INTEGER;
ALTER TABLE faces ADD COLUMN image_height_px INTEGER;
"""

DOWNGRADE = """
ALTER TABLE faces DROP COLUMN image_height_px;
ALTER TABLE faces DROP COLUMN image_width_px;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
