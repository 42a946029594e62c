"""The ``faceledger`` command: the real console script run as a subprocess (as an operator
would), or its ``main`` called in the test's process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., tuple[int, str, str]]


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


def in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data_dir: Path, **env: str
) -> Cli:
    """A function that runs ``faceledger ARGS…`` in this process with its data directory
    ``data_dir`` and ``env`` set (for the test's duration): (exit code, stdout, stderr) of that
    call alone."""
    from faceledger.cli.main import main

    monkeypatch.setenv("FACELEDGER_DATA_DIR", str(data_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main(list(args))
        code = stopped.value.code
        out = capsys.readouterr()
        return (code if isinstance(code, int) else 1), out.out, out.err

    return call
