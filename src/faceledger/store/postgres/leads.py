"""Leads, their candidates and decisions in PostgreSQL: ``SQLiteLeadStore``'s API and
guarantees.

The tables come from the migrations (``0007_leads``); what the store does is written once for
both backends (``store/lead_tables.py``).
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
