"""Leads: searches with candidates, their candidates and the reviewers' decisions.

Revision ID: 0007_leads
Revises: 0006_face_image_size
Create Date: 2026-12-06

The tables of ``faceledger.store.sqlite.leads`` (``docs/REVIEW.md``, "Leads"):
``lead_decisions`` is append-only (``seq`` orders the decisions on a lead).
"""

from __future__ import annotations

from alembic import op

revision = "0007_leads"
down_revision = "0006_face_image_size"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE leads (
    lead_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    request_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    source TEXT NOT NULL,
    principal TEXT NOT NULL,
    purpose TEXT,
    case_reference TEXT,
    collection_id TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    face_count BIGINT,
    fpir DOUBLE PRECISION,
    hit_rate DOUBLE PRECISION,
    state TEXT NOT NULL
);
CREATE INDEX leads_state ON leads (state, created_at, lead_id);
CREATE INDEX leads_collection ON leads (collection_id, created_at, lead_id);

CREATE TABLE lead_candidates (
    lead_id TEXT NOT NULL REFERENCES leads (lead_id),
    candidate_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    similarity DOUBLE PRECISION NOT NULL,
    rank INTEGER NOT NULL,
    external_image_id TEXT,
    PRIMARY KEY (lead_id, candidate_id)
);

CREATE TABLE lead_decisions (
    seq BIGSERIAL PRIMARY KEY,
    lead_id TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    request_id TEXT NOT NULL,
    decided_at DOUBLE PRECISION NOT NULL,
    FOREIGN KEY (lead_id, candidate_id) REFERENCES lead_candidates (lead_id, candidate_id)
);
CREATE INDEX lead_decisions_lead ON lead_decisions (lead_id, seq);
"""

DOWNGRADE = """
DROP TABLE lead_decisions;
DROP TABLE lead_candidates;
DROP TABLE leads;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
