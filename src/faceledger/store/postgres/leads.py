"""Leads, their candidates and decisions in PostgreSQL: ``SQLiteLeadStore``'s API and
guarantees.

The tables come from the migrations (``0007_leads``, ``0009_lead_probes``); what the store
does is written once for both backends (``store/lead_tables.py``).
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from faceledger.store.lead_tables import LeadTables
from faceledger.store.postgres.pool import PooledStore

POOL_SIZE = 2


class PostgresLeadStore(PooledStore, LeadTables):
    """Leads in PostgreSQL; safe to share by threads and processes (``pool``: ``PooledStore``)."""

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        super().__init__(self._use_pool(url, pool, size=pool_size, name="faceledger-leads"))

    def delete_leads(self, collection_id: str, *, created_before: float | None = None) -> list[str]:
        """``LeadTables.delete_leads``, then ``lead_probes`` is VACUUMed (as faces' crops are:
        the dead rows are pruned; ``faceledger db vacuum --full`` rewrites the table)."""
        deleted = super().delete_leads(collection_id, created_before=created_before)
        if deleted:
            self._vacuum_probes()
        return deleted

    def delete_probes(self, collection_id: str) -> int:
        """``LeadTables.delete_probes``, then ``lead_probes`` is VACUUMed."""
        count = super().delete_probes(collection_id)
        if count:
            self._vacuum_probes()
        return count

    def _vacuum_probes(self) -> None:
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("VACUUM (INDEX_CLEANUP ON) lead_probes")
            finally:
                conn.autocommit = False
