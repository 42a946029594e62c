"""The audit ledger: ``ledger.records`` (the hash chain) and ``ledger.meta`` (its one row).

Revision ID: 0002_ledger
Revises: 0001_initial
Create Date: 2026-11-26

Rows are exactly the SQLite ledger's: ``(seq, body, digest)`` with the record format of
``faceledger.audit.chain``, so ``faceledger audit verify|tail|export`` read either backend.
``ledger.meta`` holds the ledger id, its creation time and where the last signed checkpoint is;
writers lock its one row (``SELECT … FOR UPDATE``) to append, which orders every process's
batches into one chain. Triggers refuse UPDATE, DELETE and TRUNCATE on the records. The tables
sit in their own schema so that a deployment can grant the API's role INSERT and SELECT only.

A downgrade drops the ledger only while it holds no records: an audit trail is not removed by a
schema change (export it and drop the schema by hand if that is really meant).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0002_ledger"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE SCHEMA IF NOT EXISTS ledger;

CREATE TABLE ledger.records (
    seq BIGINT PRIMARY KEY,
    body BYTEA NOT NULL,
    digest BYTEA NOT NULL
);

CREATE TABLE ledger.meta (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    ledger_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    last_checkpoint_seq BIGINT NOT NULL DEFAULT 0,
    last_checkpoint_time DOUBLE PRECISION NOT NULL
);

CREATE FUNCTION ledger.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only';
END
$$;

CREATE TRIGGER records_no_update_delete BEFORE UPDATE OR DELETE ON ledger.records
    FOR EACH ROW EXECUTE FUNCTION ledger.refuse_change();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON ledger.records
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_change();
"""

DOWNGRADE = """
DROP SCHEMA ledger CASCADE;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    held = op.get_bind().execute(text("SELECT count(*) FROM ledger.records")).scalar()
    if held:
        raise RuntimeError(
            f"the audit ledger holds {held} records; a downgrade does not drop it (export it "
            "with `faceledger audit export`, then DROP SCHEMA ledger CASCADE by hand)"
        )
    op.execute(DOWNGRADE)
