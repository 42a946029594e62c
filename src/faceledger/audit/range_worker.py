"""The worker processes of the parallel verify (``faceledger.audit.parallel``): what one
checks (``RangeTask`` → ``check_sqlite_range`` → ``ranges.RangeCheck``) and how the caller
talks to them (``RangeWorkers``).

A worker is a fresh interpreter that imports this module and runs ``main`` (``python -c``,
not ``-m``: the classes it unpickles are this module's, not a second ``__main__`` copy). No
``fork``, and — unlike ``multiprocessing``'s ``spawn`` — nothing of the caller's ``__main__``
is imported or run again in it: a library user's script without a ``__main__`` guard stays
safe, and the CLI's imports are not paid per worker. It reads tasks from stdin and writes each
answer to stdout, in order, each a length-prefixed pickle (parent and workers are the same
program and user); it ends at the end of stdin.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from faceledger.audit.keyring import Keyring
from faceledger.audit.ranges import RangeCheck, check_range
from faceledger.audit.verify import Anchors, MacRule

_FETCH_ROWS = 1024
_LENGTH_BYTES = 8


@dataclass(frozen=True)
class RangeTask:
    """One range for a worker: records ``first``..``last`` of the SQLite ledger at ``path``."""

    path: str
    anchors: Anchors
    first: int
    last: int


def check_sqlite_range(task: RangeTask) -> RangeCheck:
    """Check one range in a worker process (``ranges.check_range``), chained to the stored
    digest of record ``first - 1``, with the MAC rule one pass starts with."""
    anchors = task.anchors
    uri = f"{Path(task.path).resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        after = None
        if task.first > 1:
            digest = _digest_at(db, task.first - 1)
            if digest is None:
                return RangeCheck.failed(task.first)
            after = (task.first - 1, digest)
        tip = anchors.tip
        rule = MacRule(
            Keyring.load(anchors.key_file), tip.macs_from if tip else None, anchors.key_file
        )
        cursor = db.execute(
            "SELECT seq, body, digest, mac FROM records WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (task.first, task.last),
        )
        chunks = iter(partial(cursor.fetchmany, _FETCH_ROWS), [])
        return check_range(
            chunks, anchors, rule=rule, digest_at=partial(_digest_at, db), after=after
        )
    finally:
        db.close()


def _digest_at(db: sqlite3.Connection, seq: int) -> bytes | None:
    row = db.execute("SELECT digest FROM records WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0]) if row is not None and isinstance(row[0], bytes) else None


def worker_command() -> list[str]:
    """The command that starts one worker."""
    return [sys.executable, "-c", "from faceledger.audit.range_worker import main; main()"]


def _write_frame(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_LENGTH_BYTES, "big") + data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    """The next message on ``stream`` (None at its end)."""
    head = stream.read(_LENGTH_BYTES)
    if len(head) < _LENGTH_BYTES:
        return None
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    try:
        return pickle.loads(data) if len(data) == size else None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return None


class RangeWorkers:
    """``count`` worker processes; task ``n`` goes to worker ``n % count``, whose answers come
    back in the order it was sent its tasks. ``OSError`` when one cannot start, or stops
    without answering. Close them with ``close`` (they are stopped if still working)."""

    def __init__(self, count: int, command: Sequence[str] | None = None) -> None:
        # the workers import faceledger from where this process does
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._procs: list[subprocess.Popen[bytes]] = []
        # a file, not a pipe: a worker that writes much there never blocks on it
        self._errors: list[IO[bytes]] = []
        try:
            for _ in range(count):
                self._errors.append(tempfile.TemporaryFile())  # noqa: SIM115 (closed in close)
                self._procs.append(
                    subprocess.Popen(
                        list(command or worker_command()),
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=self._errors[-1],
                        env=env,
                    )
                )
        except OSError:
            self.close()
            raise

    def _proc(self, n: int) -> subprocess.Popen[bytes]:
        return self._procs[n % len(self._procs)]

    def send(self, n: int, task: RangeTask) -> None:
        proc = self._proc(n)
        assert proc.stdin is not None
        _write_frame(proc.stdin, task)  # BrokenPipeError (an OSError) if it has stopped

    def receive(self, n: int) -> RangeCheck:
        proc = self._proc(n)
        assert proc.stdout is not None
        answer = _read_frame(proc.stdout)
        if not isinstance(answer, RangeCheck):
            raise OSError(f"verify worker {proc.pid} stopped: {self._last_words(n)}")
        return answer

    def _last_words(self, n: int) -> str:
        """The last line the stopped worker ``n`` wrote to stderr (its error)."""
        proc, errors = self._proc(n), self._errors[n % len(self._procs)]
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        errors.seek(0)
        text = errors.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else f"exit status {proc.returncode}"

    def close(self) -> None:
        for proc in self._procs:
            for stream in (proc.stdin, proc.stdout):
                with suppress(OSError):
                    if stream is not None:
                        stream.close()
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
        for errors in self._errors:
            errors.close()


def serve(tasks: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's loop: check each ``RangeTask`` read from ``tasks``, answer on ``answers``."""
    while isinstance(task := _read_frame(tasks), RangeTask):
        _write_frame(answers, check_sqlite_range(task))


def main() -> None:
    """Answer on the stdout this process was given; anything else printed goes to stderr."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
