"""Worker for the kill -9 test of association intents (run as a script).

    python association_worker.py DATA_DIR VERB POINT USER_ID FACE_ID

Runs one association change through the gateway — VERB ``associate`` / ``disassociate`` the
face, or ``delete_user`` — and stops for good at POINT: ``before`` the store changes (its
intent record written) or ``after`` the store committed (its outcome record not written),
printing ``READY`` there so that the test can ``kill -9`` it (``helpers.processes``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from faceledger.config import Settings
from faceledger.services.gateway import Gateway, local_operator

COLLECTION = "associations"
VERBS = ("associate", "disassociate", "delete_user")


def _stop_here() -> None:
    print("READY", flush=True)
    while True:
        time.sleep(60)


def main() -> None:
    data_dir, verb, point, user_id, face_id = sys.argv[1:6]
    gate = Gateway(Settings(data_dir=Path(data_dir), workers=1))
    caller = local_operator()
    if point == "before":  # the intent is written; the store is never called

        def stop(*args: Any, **kwargs: Any) -> None:
            _stop_here()

        setattr(gate._collections.store, verb, stop)  # the store method of that name
    else:  # the store committed; the outcome record is never written
        append = gate._ledger.append

        def outcome_stops(event: Any) -> Any:
            if event.phase == "outcome":
                _stop_here()
            return append(event)

        gate._ledger.append = outcome_stops  # type: ignore[method-assign]
    if verb == "associate":
        gate.associate_faces(caller, COLLECTION, user_id, [face_id])
    elif verb == "disassociate":
        gate.disassociate_faces(caller, COLLECTION, user_id, [face_id])
    else:
        gate.delete_user(caller, COLLECTION, user_id)
    print("FINISHED", flush=True)  # never reached: the test kills the worker at READY


if __name__ == "__main__":
    main()
