"""``faceledger serve`` as a real subprocess (a server process of its own, as replicas are)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from helpers.cli import script

START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_process(data_dir: Path, database_url: str | None = None) -> Iterator[str]:
    """Run ``faceledger serve`` on a free loopback port with ``data_dir`` (and PostgreSQL at
    ``database_url`` when given; the ledger key from this process's environment); yield its
    base URL once ``/healthz`` answers, and stop it (SIGTERM, then SIGKILL) on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = dict(
        os.environ,
        FACELEDGER_DATA_DIR=str(data_dir),
        FACELEDGER_PORT=str(port),
        FACELEDGER_LOG_LEVEL="WARNING",
        FACELEDGER_WORKERS="1",
    )
    env.pop("FACELEDGER_DATABASE_URL", None)
    if database_url:
        env["FACELEDGER_DATABASE_URL"] = database_url
    # its stderr goes to a file (a pipe nobody reads could fill and block it)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([script(), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_ready(proc, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")
            pytest.fail(f"faceledger serve exited during start-up:\n{err[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"faceledger serve did not answer {url}/healthz in {START_TIMEOUT_S} s")
        time.sleep(0.1)
