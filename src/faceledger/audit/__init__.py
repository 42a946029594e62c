"""The audit ledger (layer 5): append-only, hash-chained, signed at checkpoints, verifiable.

``Ledger`` records ``AuditEvent``s durably (group commit, several threads and processes form
one chain); ``Ledger.verify`` proves the chain intact or names the first bad record;
``faceledger.audit.export`` writes records as JSON lines or CSV. Imports only ``domain`` and
the standard library.
"""

from faceledger.audit.ledger import LEDGER_FILENAME, Ledger, LedgerEntry
from faceledger.audit.signing import default_key_file
from faceledger.audit.verify import VerifyReport

__all__ = ["LEDGER_FILENAME", "Ledger", "LedgerEntry", "VerifyReport", "default_key_file"]
