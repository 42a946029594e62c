"""The audit ledger (layer 5): append-only, hash-chained, signed at checkpoints, verifiable.

``Ledger`` records ``AuditEvent``s durably in a SQLite file (group commit, several threads and
processes form one chain); ``faceledger.audit.postgres.PostgresLedger`` does the same in
PostgreSQL for several API processes; both are ``ChainLedger``s (``faceledger.audit.core``)
and ``Ledger.from_settings`` picks one. ``verify`` proves the chain intact or names the first
bad record; ``faceledger.audit.export`` writes records as JSON lines or CSV. Imports only
``domain``, the standard library and, for PostgreSQL, ``psycopg``.
"""

from faceledger.audit.core import ChainLedger
from faceledger.audit.ledger import LEDGER_FILENAME, Ledger, LedgerEntry
from faceledger.audit.signing import default_key_file
from faceledger.audit.verify import VerifyReport

__all__ = [
    "LEDGER_FILENAME",
    "ChainLedger",
    "Ledger",
    "LedgerEntry",
    "VerifyReport",
    "default_key_file",
]
