"""Leads' searched faces, the "recorded" flag of leads, per-principal preferences.

Revision ID: 0009_lead_probes
Revises: 0008_face_crops
Create Date: 2026-12-06

- ``leads.recorded``: set once the search's ledger record has landed; the review queue lists
  recorded leads only. Leads made before this revision were listed, so they count as
  recorded; new rows start FALSE.
- ``lead_probes``: the searched face of a lead when its collection keeps crops: an enrolled
  face's FaceId (its kept crop is shown) or the probe photo's face crop, sealed (``nonce ||
  AES-256-GCM ciphertext``, the lead id as associated data). Deleted with the lead (cascade,
  and explicitly by the store). ``STORAGE EXTERNAL``: ciphertext does not compress.
- ``principal_preferences``: small per-principal settings of the web app (the last
  collection searched), shared by every server process.
"""

from __future__ import annotations

from alembic import op

revision = "0009_lead_probes"
down_revision = "0008_face_crops"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE leads ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE leads SET recorded = TRUE;
CREATE INDEX leads_recorded ON leads (recorded, state);

CREATE TABLE lead_probes (
    lead_id TEXT PRIMARY KEY REFERENCES leads (lead_id) ON DELETE CASCADE,
    collection_id TEXT NOT NULL,
    face_id TEXT,
    sealed BYTEA,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX lead_probes_collection ON lead_probes (collection_id);
ALTER TABLE lead_probes ALTER COLUMN sealed SET STORAGE EXTERNAL;

CREATE TABLE principal_preferences (
    principal TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (principal, name)
);
"""

DOWNGRADE = """
DROP TABLE principal_preferences;
DROP TABLE lead_probes;
DROP INDEX leads_recorded;
ALTER TABLE leads DROP COLUMN recorded;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
