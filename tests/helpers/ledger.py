"""Audit events as the services write them, the records a data directory's ledger holds, and
the worker processes that append to one ledger concurrently, and raw access for tampering."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from faceledger.audit.core import ChainLedger
from faceledger.audit.ledger import Ledger
from faceledger.audit.postgres import PostgresLedger
from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent, Caller
from faceledger.domain.principals import Principal


def event(n: int, **changes: object) -> AuditEvent:
    """A search event like the services write (three matches, one probe digest)."""
    caller = Caller(
        Principal(f"officer-{n % 7}", ("search",), f"FLAK{n % 3:016d}"),
        source="native",
        request_id=f"req-{n}",
        purpose="identify a suspect",
        case_reference=f"CASE-{n % 5}",
    )
    base = AuditEvent.of(
        caller,
        "SearchFacesByImage",
        collection_id=f"col-{n % 2}",
        probe_sha256=(hashlib.sha256(str(n).encode()).hexdigest(),),
        result={
            "FaceMatches": [{"FaceId": f"face-{n}-{i}", "Similarity": 99.0 - i} for i in range(3)]
        },
    )
    if not changes:
        return base
    return AuditEvent(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def ledgered(data_dir: Path, **filters: str) -> list[AuditEvent]:
    """The events in the ledger of ``data_dir`` matching ``filters``, oldest first (the intent
    records written before each biometric change are left out: see test_intents.py)."""
    with Ledger.from_settings(Settings(data_dir=data_dir)) as ledger:
        events = [e.event for e in ledger.entries(**filters) if e.event is not None]
    return [e for e in events if e.phase != "intent"]


def append_until_told(ledger: ChainLedger, mode: str, count: int) -> None:
    """The body of a ledger worker process (``python test_….py MODE …``). Prints READY, then —
    ``append``: once a line arrives on stdin, appends ``count`` events from 2 threads, printing
    ``<seq> <digest>`` per acknowledged append; ``crash``: appends from 4 threads until killed,
    printing (flushed) each acknowledged seq. Closes ``ledger`` at the end."""
    lock = threading.Lock()
    print("READY", flush=True)
    if mode == "append":
        sys.stdin.readline()  # "GO"

    def run(k: int) -> None:
        n = 0
        while mode == "crash" or n < count // 2:
            entry = ledger.append(event(os.getpid() + k * 100_000 + n))
            with lock:
                if mode == "crash":
                    print(entry.seq, flush=True)
                else:
                    print(entry.seq, entry.digest)
            n += 1

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4 if mode == "crash" else 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.close()


class Raw:
    """A plain connection to the ledger's storage with the append-only triggers off (as an
    attacker who can write the file or the database would). It speaks the SQLite ledger's SQL
    (``?`` placeholders, tables ``records`` and ``meta``) on either backend."""

    def __init__(self, ledger: ChainLedger) -> None:
        self.pg = isinstance(ledger, PostgresLedger)
        if isinstance(ledger, PostgresLedger):
            import psycopg

            self.db: Any = psycopg.connect(
                ledger.url, autocommit=True, options="-c search_path=ledger"
            )
            self.db.execute("ALTER TABLE records DISABLE TRIGGER USER")
        else:
            assert isinstance(ledger, Ledger)
            self.db = sqlite3.connect(ledger.path, isolation_level=None)
            self.db.execute("DROP TRIGGER IF EXISTS records_no_update")
            self.db.execute("DROP TRIGGER IF EXISTS records_no_delete")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.db.execute(sql.replace("?", "%s") if self.pg else sql, params)


def raw(ledger: ChainLedger) -> Raw:
    return Raw(ledger)
