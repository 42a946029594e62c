"""A real uvicorn server for the HTTP tests, and the access keys they send."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from faceledger.config import Settings


def create_key(settings: Settings, principal: str, roles: list[str]) -> tuple[str, str]:
    """A new access key in ``settings.data_dir`` (or its database): ``(key_id, secret)``."""
    from faceledger.services.keys import KeyService

    keys = KeyService(settings)
    try:
        key, secret = keys.create(principal, roles)
    finally:
        keys.close()
    return key.key_id, secret


@contextlib.contextmanager
def start_live_server(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` with a real uvicorn server on a free loopback port.

    Yields the base URL once ``/healthz`` answers (the lifespan has loaded the default pack);
    stops the server on exit. Create any keys in ``settings.data_dir`` before entering.
    """
    import httpx
    import uvicorn

    from faceledger.api.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound here, so the port cannot be taken before uvicorn starts
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        # as ``faceledger serve``: forwarded headers only from FACELEDGER_TRUSTED_PROXIES
        uvicorn.Config(
            create_app(settings), log_level="warning", lifespan="on", proxy_headers=False
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if not thread.is_alive():
                pytest.fail("the live server exited during start-up (see the log above)")
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the live server did not answer {url}/healthz within 60 s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
