"""Verify a long SQLite ledger on several cores, judged exactly as one pass judges it.

One pass (``verify.verify_chain``) is CPU-bound: per record it reads the row, hashes the body
(SHA-256) and checks its MAC (HMAC-SHA256), ~1 KB each. Here the seqs 1..N are cut into ranges
of ``range_records``; worker processes check them (``range_worker``: every row's seq, link,
digest and MAC, checkpoints, rotations, the records the witness and the tip name — the same
walk, over a read-only connection of their own) and the calling process joins their
answers in seq order (``ranges.RangeJoin``: each range must continue the chain, and the MAC
key, exactly where the previous one ended).

Only a chain that joins from record 1 to the newest gets its report from here. Anything else —
a range that fails or does not join, seqs that do not start at 1, anchor files that do not
verify, workers that cannot start or stop — returns None, and the caller runs the one pass, which
names the first bad record and why exactly as it always has (it stops there, so it reads only
up to that record).

Workers are fresh interpreters (``range_worker``: never ``fork``, safe from a threaded server,
available on every platform, and nothing of the caller's ``__main__`` is run again). Memory
stays bounded: at most ``2 × workers`` ranges are in flight, each worker holds one fetch of
rows, and a range's answer is a few numbers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from faceledger.audit.keyring import Keyring
from faceledger.audit.range_worker import RangeTask, RangeWorkers
from faceledger.audit.ranges import RangeJoin
from faceledger.audit.verify import Anchors, MacRule, Progress, VerifyReport

logger = logging.getLogger(__name__)

_MAX_WORKERS = 8


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ParallelPlan:
    """How ``verify`` may spread the work: ``workers`` processes (1: one pass, in this
    process), each checking ``range_records`` consecutive records at a time, for ledgers of at
    least ``min_records`` records (below that, starting the processes costs more than it
    saves)."""

    workers: int
    range_records: int = 100_000
    min_records: int = 400_000

    def __post_init__(self) -> None:
        if self.workers < 1 or self.range_records < 1 or self.min_records < 0:
            raise ValueError("a plan needs ≥ 1 worker, ≥ 1 record a range and min_records ≥ 0")

    @classmethod
    def auto(cls) -> ParallelPlan:
        """One worker per available CPU (at most 8)."""
        return cls(workers=min(available_cpus(), _MAX_WORKERS))

    @classmethod
    def one_pass(cls) -> ParallelPlan:
        return cls(workers=1)

    def applies(self, records: int) -> bool:
        return self.workers > 1 and records >= max(self.min_records, 2)


def _extent(path: Path) -> tuple[int, int]:
    """``(lowest seq, highest seq)`` of the ledger at ``path`` (two indexed look-ups)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        low = db.execute("SELECT min(seq) FROM records").fetchone()[0]
        high = db.execute("SELECT max(seq) FROM records").fetchone()[0]
    finally:
        db.close()
    return (low, high) if isinstance(low, int) and isinstance(high, int) else (0, 0)


def verify_sqlite_in_parallel(
    path: Path,
    anchors: Anchors,
    keyring: Keyring,
    plan: ParallelPlan,
    progress: Progress | None = None,
) -> VerifyReport | None:
    """The passing report of the SQLite ledger at ``path`` checked by ``plan.workers``
    processes, or None: the plan does not apply, or the chain does not join from record 1 to
    the newest (then the one pass must judge it; see the module docstring). ``anchors``: the
    witness and tip as read before the rows."""
    started = time.perf_counter()
    if plan.workers < 2:
        return None
    try:
        low, total = _extent(path)
    except sqlite3.Error:
        return None
    if low != 1 or not plan.applies(total):
        return None
    tip = anchors.tip
    join = RangeJoin(anchors, MacRule(keyring, tip.macs_from if tip else None, anchors.key_file))
    if not join.anchors_signed():
        return None
    tasks = (
        RangeTask(str(path), anchors, first, min(first + plan.range_records - 1, total))
        for first in range(1, total + 1, plan.range_records)
    )
    try:
        workers = RangeWorkers(plan.workers)
    except OSError as exc:  # no processes here
        logger.warning("verifying in one process: cannot start worker processes (%s)", exc)
        return None
    try:
        joined = _join_in_order(workers, tasks, join, 2 * plan.workers, progress, total)
    except OSError as exc:
        logger.warning("verifying in one process: %s", exc)
        return None
    finally:
        workers.close()
    return join.report(started) if joined else None


def _join_in_order(
    workers: RangeWorkers,
    tasks: Iterator[RangeTask],
    join: RangeJoin,
    in_flight: int,
    progress: Progress | None,
    total: int,
) -> bool:
    """Send ``tasks`` (at most ``in_flight`` ahead) and join their answers in order; False at
    the first range that fails or does not join (the caller then stops the workers)."""
    sent: deque[RangeTask] = deque()

    def send_next() -> None:
        task = next(tasks, None)
        if task is not None:
            workers.send(len(sent) + done, task)
            sent.append(task)

    done = 0
    for _ in range(in_flight):
        send_next()
    while sent:
        task = sent.popleft()
        check = workers.receive(done)
        done += 1
        if not join.add(check) or check.last_seq != task.last:
            return False
        if progress is not None:
            progress(check.last_seq, total)
        send_next()
    return True
