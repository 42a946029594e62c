"""Readiness checks and the record a server leaves when it stops (SIGTERM).

``readiness``: the checks behind ``/readyz`` — models loaded, the store answering a query, the
ledger open, verified and writable (not refusing appends, not closing). ``/healthz`` stays a
liveness probe: it answers whenever the process does.

``record_shutdown``: one ``ServerShutdown`` ledger record (source "system") naming the stream
processors this process is about to stop and the stored-video jobs it holds, which stay
``IN_PROGRESS`` and are queued again by the next server to start (or, on another host, once
their lease runs out); and brings the indexes in memory up to date with the store. The
gateway's ``close`` then stops the processors (each records its
stop in the store), saves the index snapshots and signs the ledger's tail (a final
checkpoint).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faceledger.domain.audit import AuditEvent, Caller
from faceledger.domain.errors import FaceLedgerError
from faceledger.domain.principals import Principal
from faceledger.inference.timing import StageObserver

if TYPE_CHECKING:
    from faceledger.services.gateway import Gateway

_SYSTEM = Caller(Principal("system:server", (), "SYSTEM"), source="system", request_id="")
_MANY = 1_000_000


def _ours(owner: str | None) -> bool:
    """Whether ``owner`` (``host:pid:nonce``, as the video service names its process) is this
    process."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid == str(os.getpid())


def readiness(gate: Gateway) -> dict[str, Any]:
    """``{"ready": bool, "checks": {name: "ok" or why not}}`` — never raises."""
    checks: dict[str, str] = {}
    checks["models"] = "ok" if gate._faces.loaded else "the model pack is not loaded yet"
    try:
        gate._collections.store.list_collections(after=None, limit=1)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unreachable: {type(exc).__name__}"
    try:
        gate._ledger.open()  # raises while the ledger refuses appends (failed verification)
        gate._ledger.last_seq()
        checks["ledger"] = "ok"
    except FaceLedgerError as exc:
        checks["ledger"] = f"not writable: {exc.code}"
    except Exception as exc:
        checks["ledger"] = f"unreachable: {type(exc).__name__}"
    return {"ready": all(v == "ok" for v in checks.values()), "checks": checks}


def record_shutdown(gate: Gateway, *, grace_s: float) -> dict[str, Any]:
    """Append the ``ServerShutdown`` record (see the module docstring); returns its result.
    A failure is returned in the result rather than raised: stopping must go on."""
    processors: list[str] = []
    jobs: list[str] = []
    try:
        store = gate._video.store
        processors = [
            row.name
            for row in store.list_processors(after=None, limit=_MANY)
            if row.status == "RUNNING" and _ours(row.owner)
        ]
        jobs = [job.job_id for job in store.unfinished_jobs() if _ours(job.claimed_by)]
    except Exception as exc:  # the store may be what failed
        result: dict[str, Any] = {"error": f"{type(exc).__name__}"}
    else:
        result = {}
    result.update(
        {
            "stream_processors_stopping": processors,
            "video_jobs_returned_to_queue": jobs,
            "grace_seconds": grace_s,
            "pid": os.getpid(),
            "time": time.time(),
        }
    )
    try:
        gate._ledger.append(AuditEvent.of(_SYSTEM, "ServerShutdown", result=result))
    except FaceLedgerError as exc:
        result["ledger_error"] = exc.code
    try:  # the indexes in memory take in the last writes, so the final snapshots are current
        gate._collections.indexes.refresh_all()
    except Exception as exc:
        result["index_refresh_error"] = type(exc).__name__
    return result


def observe_stages(gate: Gateway, observer: StageObserver) -> None:
    """Report the pipeline's stage times (decode, detect, embed, search) to ``observer``."""
    gate._faces.engine.clock.observer = observer


@dataclass(frozen=True)
class LedgerState:
    ok: bool  # readable and accepting appends
    head_seq: int
    checkpoint_age_s: float
    unsigned_tail: int


@dataclass(frozen=True)
class VideoState:
    processors_by_state: dict[str, int]
    frames: dict[str, int]  # read / dropped / analysed, summed over running processors
    reconnects: int
    jobs_by_state: dict[str, int]


def ledger_state(gate: Gateway) -> LedgerState:
    """The ledger's head, checkpoint age and unsigned tail (for metrics); never raises."""
    ledger = gate._ledger
    try:
        head = ledger.last_seq()
        cp_seq, cp_time = ledger.checkpoint_position()
    except Exception:
        return LedgerState(False, 0, 0.0, 0)
    return LedgerState(
        ok=ledger.writable,
        head_seq=head,
        checkpoint_age_s=max(0.0, time.time() - cp_time),
        unsigned_tail=max(0, head - cp_seq),
    )


def video_state(gate: Gateway) -> VideoState | None:
    """Stream processors by state, their frame counters, jobs in progress (for metrics);
    None if the store cannot be read."""
    video = gate._video
    try:
        rows = video.store.list_processors(after=None, limit=_MANY)
        jobs = video.store.job_counts()
    except Exception:
        return None
    counts: dict[str, int] = {}
    frames = {"read": 0, "dropped": 0, "analysed": 0}
    reconnects = 0
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        if row.status != "RUNNING":
            continue
        try:
            _, live = video.processors.describe_processor(row.name)
        except Exception:
            continue
        for kind in frames:
            frames[kind] += int(live.get(f"frames_{kind}") or 0)
        reconnects += int(live.get("reconnects") or 0)
    return VideoState(counts, frames, reconnects, jobs)
