"""Intent records: which process wrote one, and whether that process is still alive.

A biometric change writes an *intent* record before the store changes and an *outcome* after
(``services.gateway``). An intent left without an outcome is reconciled against the store's
change log once the process that wrote it is gone: ``owner_alive`` tells, for an owner on this
host, whether that very process (same pid *and* start time, so a reused pid does not count)
still runs; for an owner on another host it cannot tell (None), and the caller waits for the
intent to age instead.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class OpenIntent:
    """An intent record with no outcome yet: its id, seq, owner and time (epoch seconds)."""

    intent_id: str
    seq: int
    owner: str
    time: float


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so split after its ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode("ascii") if len(fields) > 19 else None


def process_owner() -> str:
    """``host:pid:start`` of this process (a ``fork()``ed child has its own pid, so its own)."""
    return _owner(os.getpid())


@cache
def _owner(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process named by ``owner`` still runs (None: it ran on another host)."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    current = _start_time(int(pid_text))
    return current is not None and current == start
