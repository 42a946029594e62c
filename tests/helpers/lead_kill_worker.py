"""Worker for the kill -9 test of unrecorded leads (run as a script).

    python lead_kill_worker.py DATA_DIR COLLECTION FACE_ID

With ``FACELEDGER_DATABASE_URL`` set in its environment it uses that PostgreSQL database.
Searches the collection with an enrolled face (a search with a candidate: its lead is written
first) and kills itself with SIGKILL the moment the search's ledger record is about to be
appended: the lead is in the store, its record is nowhere.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent
from faceledger.services.gateway import Gateway, local_operator


def main() -> None:
    data_dir, collection_id, face_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    gate = Gateway(Settings(data_dir=data_dir, workers=1))
    real = gate._ledger.append

    def append(event: AuditEvent) -> Any:
        if event.operation == "SearchFaces":
            print("KILLED BEFORE THE RECORD", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(event)

    gate._ledger.append = append  # type: ignore[method-assign]
    gate.search_faces(local_operator(), collection_id, face_id)


if __name__ == "__main__":
    main()
