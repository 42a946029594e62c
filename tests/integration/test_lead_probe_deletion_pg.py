"""PostgreSQL: a deleted lead's searched face is out of every database file after ``faceledger
db vacuum --full`` (``lead_probes`` is one of its tables), as a deleted face's crop is
(``test_face_crops.py``); the leads' plain VACUUM after each deletion prunes the rows."""

from __future__ import annotations

import os

from faceledger.store.records import LeadProbe
from helpers.leads import a_lead
from helpers.postgres import database_files


def test_postgres_deletion_leaves_no_copy_of_a_leads_probe(migrated_database: str) -> None:
    from faceledger.cli.db import VACUUM_TABLES
    from faceledger.store.postgres.faces import PostgresStore
    from faceledger.store.postgres.leads import PostgresLeadStore

    assert "lead_probes" in VACUUM_TABLES
    leads = PostgresLeadStore(migrated_database)
    faces = PostgresStore(migrated_database)
    try:
        made = {
            "old": a_lead(collection_id="case", created_at=100.0),
            "new": a_lead(collection_id="case", created_at=10_000.0),
            "gone": a_lead(collection_id="gone", created_at=100.0),
        }
        sealed = {name: os.urandom(6000) for name in made}
        for name, lead in made.items():
            leads.add_lead(lead, LeadProbe(sealed=sealed[name]))
        raw = database_files(migrated_database)
        assert all(s[100:132] in raw for s in sealed.values())  # stored: the search can fail

        assert leads.delete_leads("case", created_before=1_000.0) == [made["old"].lead_id]
        assert leads.delete_probes("gone") == 1  # a deleted collection's leads lose their probes
        faces.vacuum(*VACUUM_TABLES, full=True)
        raw = database_files(migrated_database)
        assert sealed["old"][100:132] not in raw and sealed["gone"][100:132] not in raw
        assert sealed["new"][100:132] in raw  # the lead not deleted keeps its probe
    finally:
        leads.close()
        faces.close()
