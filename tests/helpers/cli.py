"""The real ``faceledger`` console script, run as a subprocess (as an operator would)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def script() -> str:
    """The installed ``faceledger`` console script (beside this Python, or on ``PATH``); skips
    the test when it is not installed."""
    beside = Path(sys.executable).parent / "faceledger"
    found = str(beside) if beside.is_file() else shutil.which("faceledger")
    if found is None:
        pytest.skip("the faceledger console script is not installed (pip install -e .)")
    return found


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``faceledger ARGS…`` in ``cwd`` with its data directory ``cwd/data`` and ``env`` added."""
    environ = {**os.environ, "FACELEDGER_DATA_DIR": str(cwd / "data"), **env}
    return subprocess.run(
        [script(), *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=180
    )
