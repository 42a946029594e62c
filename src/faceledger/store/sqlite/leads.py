"""Leads, their candidates and decisions: three tables of the store's SQLite file.

What the store does is written once for both backends (``store/lead_tables.py``); this module
makes the tables.
"""

from __future__ import annotations

from pathlib import Path

from faceledger.store.lead_tables import LeadTables
from faceledger.store.sqlite.connections import SchemaStore
from faceledger.store.sqlite.lead_probes import add_lead_extras, scrub_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS leads (
    lead_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    request_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    source TEXT NOT NULL,
    principal TEXT NOT NULL,
    purpose TEXT,
    case_reference TEXT,
    collection_id TEXT NOT NULL,
    threshold REAL NOT NULL,
    face_count INTEGER,
    fpir REAL,
    hit_rate REAL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_state ON leads(state, created_at, lead_id);
CREATE INDEX IF NOT EXISTS leads_collection ON leads(collection_id, created_at, lead_id);
CREATE TABLE IF NOT EXISTS lead_candidates (
    lead_id TEXT NOT NULL REFERENCES leads(lead_id),
    candidate_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    similarity REAL NOT NULL,
    rank INTEGER NOT NULL,
    external_image_id TEXT,
    PRIMARY KEY (lead_id, candidate_id)
);
CREATE TABLE IF NOT EXISTS lead_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    request_id TEXT NOT NULL,
    decided_at REAL NOT NULL,
    FOREIGN KEY (lead_id, candidate_id) REFERENCES lead_candidates(lead_id, candidate_id)
);
CREATE INDEX IF NOT EXISTS lead_decisions_lead ON lead_decisions(lead_id, seq);
"""


class SQLiteLeadStore(SchemaStore, LeadTables):
    """Leads in the store's SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        sql = self._open_tables(path, SCHEMA)
        add_lead_extras(self._connections)
        super().__init__(sql)

    def delete_leads(self, collection_id: str, *, created_before: float | None = None) -> list[str]:
        """``LeadTables.delete_leads``, then the WAL is truncated (kept probes go from it)."""
        deleted = super().delete_leads(collection_id, created_before=created_before)
        if deleted:
            scrub_wal(self._connections)
        return deleted

    def delete_probes(self, collection_id: str) -> int:
        """``LeadTables.delete_probes``, then the WAL is truncated."""
        count = super().delete_probes(collection_id)
        if count:
            scrub_wal(self._connections)
        return count
