"""TLS: ``faceledger serve --tls-cert/--tls-key``, HSTS, Secure cookies, trusted proxies.

The certificate is made here (self-signed, for 127.0.0.1 and localhost); boto3 and httpx
verify the server against it, and a client that does not trust it is refused.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest

from faceledger.config import Settings
from faceledger.evaluation.certificates import self_signed_certificate
from helpers.live import create_key, start_live_server

CLI = "import sys; from faceledger.cli.main import main; main(sys.argv[1:])"


def _trusting(cert: Path) -> ssl.SSLContext:
    """A client TLS context that trusts ``cert`` (and nothing else)."""
    return ssl.create_default_context(cafile=str(cert))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str, str]]:
    """``faceledger serve --tls-cert … --tls-key …`` in a subprocess: (url, cert, key id,
    secret)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_certificate(folder)
    data = folder / "data"
    settings = Settings(data_dir=data)
    key_id, secret = create_key(settings, "tls-admin", ["admin", "enrol", "search"])
    port = _free_port()
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    env = {**os.environ, "FACELEDGER_DATA_DIR": str(data), "FACELEDGER_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--port", str(port), *tls],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"serve exited: {server.stderr.read().decode() if server.stderr else ''}"
                )
            try:
                if (
                    httpx.get(f"{url}/healthz", verify=_trusting(cert), timeout=5)
                    .json()
                    .get("loaded")
                ):
                    break
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("serve --tls-cert did not answer within 90 s")
            time.sleep(0.1)
        yield url, cert, key_id, secret
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_boto3_over_tls_verifies_the_certificate(tls_server: tuple[str, Path, str, str]) -> None:
    url, cert, key_id, secret = tls_server

    def client(verify: str | bool) -> object:
        return boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            verify=verify,
        )

    rek = client(str(cert))
    rek.create_collection(CollectionId="over-tls")  # type: ignore[attr-defined]
    assert "over-tls" in rek.list_collections()["CollectionIds"]  # type: ignore[attr-defined]
    with pytest.raises(botocore.exceptions.SSLError):  # the system CAs do not know it
        client(True).list_collections()  # type: ignore[attr-defined]


def test_tls_server_sends_hsts_and_secure_cookies(tls_server: tuple[str, Path, str, str]) -> None:
    url, cert, _, _ = tls_server
    page = httpx.get(f"{url}/app/login", verify=_trusting(cert))
    assert page.status_code == 200
    assert page.headers["strict-transport-security"].startswith("max-age=")
    cookies = page.headers.get_list("set-cookie")
    assert cookies and all("secure" in c.lower() for c in cookies)
    plain = url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
        httpx.get(f"{plain}/healthz", timeout=10)


@pytest.mark.parametrize(("trusted", "believed"), [(["10.9.9.9"], False), (["127.0.0.1"], True)])
def test_forwarded_headers_only_from_trusted_proxies(
    tmp_path: Path, trusted: list[str], believed: bool
) -> None:
    settings = Settings(data_dir=tmp_path, trusted_proxies=trusted)
    with start_live_server(settings) as url:
        page = httpx.get(
            f"{url}/app/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}
        )
    assert page.status_code == 200
    assert ("strict-transport-security" in page.headers) is believed
    cookies = page.headers.get_list("set-cookie")
    assert cookies and all(("secure" in c.lower()) is believed for c in cookies)


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValueError, match="both"):
        Settings(tls_cert_file=Path("cert.pem"))
