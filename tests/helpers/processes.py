"""Python subprocesses of the tests: workers that import ``helpers``, and ``kill -9`` rounds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS_ROOT = Path(__file__).resolve().parents[1]


def python_env(**changes: str | None) -> dict[str, str]:
    """This process's environment for a Python child that imports ``helpers`` (``tests/`` first
    on ``PYTHONPATH``); each change sets a variable, or removes it when ``None``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_and_kill(
    script: Path, args: list[str], delay_s: float, database_url: str | None
) -> list[str]:
    """Start ``python SCRIPT ARGS…``, wait for its ``READY`` line, let it work ``delay_s``, then
    ``kill -9`` it; the lines it printed (flushed before the kill).

    The child writes to PostgreSQL at ``database_url`` (``FACELEDGER_DATABASE_URL``) when given,
    else to the SQLite store of the data directory in its arguments.
    """
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(FACELEDGER_DATABASE_URL=database_url or None),
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.strip() == "READY", proc.stderr.read() if proc.stderr else ready
    time.sleep(delay_s)
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    return out.splitlines()
