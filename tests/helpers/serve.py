"""``faceledger serve`` as a real subprocess: started with an environment, stopped with SIGTERM.

For tests of what happens across a graceful stop and a restart (the process's exit status, what
it hands back, what the next process picks up). ``ServerProcess.start`` waits for ``/readyz``.
``other_host`` runs the server under ``unshare --uts`` with another host name, so that a second
server on this machine cannot tell the first one's processes are gone by their pids (as a
server on another machine could not); it needs root and ``unshare``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_fake_host() -> bool:
    """Whether ``other_host`` works here (root and ``unshare``)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "sh", "-c", "hostname faceledger-probe && hostname"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "faceledger-probe"


@dataclass
class ServerProcess:
    """One ``faceledger serve`` process on ``port`` with ``env`` (FACELEDGER_* settings); its
    stderr goes to ``log_path`` (a file: a pipe nobody reads could fill and stall it)."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    other_host: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> ServerProcess:
        command = [str(Path(sys.executable).with_name("faceledger")), "serve"]
        if self.other_host is not None:
            script = f'hostname {self.other_host} && exec "$0" "$@"'
            command = ["unshare", "--uts", "sh", "-c", script, *command]
        env = {**os.environ, **self.env, "FACELEDGER_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited during start-up:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server on {self.url} was not ready within {timeout_s:.0f} s")
            time.sleep(0.1)

    def terminate(self, timeout_s: float = 120) -> int:
        """SIGTERM, then the exit status once the process has stopped."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        """What the server processes wrote to stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
