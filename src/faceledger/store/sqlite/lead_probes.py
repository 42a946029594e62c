"""What leads gained after ``0007_leads`` in the store's SQLite file: the ``recorded`` flag and
the ``lead_probes`` table (the searched face of a lead, when its collection keeps crops).

``add_lead_extras`` makes them on open (one write transaction, so two processes opening an
older file add the column once; leads made before the flag existed count as recorded, as they
were listed). A deleted lead's probe row is overwritten in the file (``secure_delete``) and
``scrub_wal`` truncates the WAL after the deletion, as for faces and their crops.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from faceledger.store.sqlite.connections import BUSY_TIMEOUT_MS, Connections

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS lead_probes (
    lead_id TEXT PRIMARY KEY REFERENCES leads(lead_id) ON DELETE CASCADE,
    collection_id TEXT NOT NULL,
    face_id TEXT,
    sealed BLOB,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lead_probes_collection ON lead_probes(collection_id);
"""

CHECKPOINT_BUSY_TIMEOUT_MS = 250
CHECKPOINT_ATTEMPTS = 8


def add_lead_extras(connections: Connections) -> None:
    """Add the ``recorded`` column (older files: existing leads count as recorded) and the
    ``lead_probes`` table, if missing."""
    with connections.write_lock:
        connections.db().executescript(SCHEMA)
    with connections.tx() as db:
        have = {r["name"] for r in db.execute("PRAGMA table_info(leads)")}
        if "recorded" not in have:
            db.execute("ALTER TABLE leads ADD COLUMN recorded INTEGER NOT NULL DEFAULT 0")
            db.execute("UPDATE leads SET recorded = 1")
            db.execute("CREATE INDEX IF NOT EXISTS leads_recorded ON leads(recorded, state)")


def scrub_wal(connections: Connections) -> bool:
    """Checkpoint the WAL and truncate it (a deleted probe's pages must not stay in it);
    retried briefly while another connection is busy. False (logged) when it could not."""
    db = connections.db()
    with connections.write_lock:
        db.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_TIMEOUT_MS}")
        try:
            for attempt in range(CHECKPOINT_ATTEMPTS):
                try:
                    busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                except sqlite3.OperationalError:
                    busy = 1
                if not busy:
                    return True
                time.sleep(0.01 * (attempt + 1))
        finally:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    logger.warning("%s: the WAL could not be checkpointed after deleting leads", connections.path)
    return False
