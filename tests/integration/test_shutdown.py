"""Graceful shutdown and readiness of a real ``faceledger serve`` process.

- ``/readyz`` answers 200 with each check "ok" (models, store, ledger); ``/healthz`` stays
  liveness only.
- SIGTERM while an upload is half sent and a stream processor runs: new connections are
  refused at once, the in-flight request still completes with 200, and the process exits with
  status 0 after writing a ``ServerShutdown`` record naming the processor, its stop in the
  store, the collection's index snapshot and a final signed checkpoint (no unsigned tail).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from faceledger.audit import Ledger
from faceledger.config import Settings
from faceledger.services.keys import KeyService
from helpers.data import lfw_people


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_sigterm_finishes_in_flight_and_exits_zero(tmp_path: Path, data_dir: Path) -> None:
    key_file = tmp_path / "keys" / "ledger.key"
    data = tmp_path / "data"
    settings = Settings(data_dir=data, ledger_key_file=key_file)
    keys = KeyService(settings)
    try:
        record, secret = keys.create("shutdown-test", ["admin", "enrol", "search"])
    finally:
        keys.close()
    headers = {"Authorization": f"Bearer {record.key_id}:{secret}"}
    port = _free_port()
    env = dict(
        os.environ,
        FACELEDGER_DATA_DIR=str(data),
        FACELEDGER_LEDGER_KEY_FILE=str(key_file),
        FACELEDGER_PORT=str(port),
        FACELEDGER_LOG_LEVEL="INFO",
        FACELEDGER_WORKERS="1",
        FACELEDGER_SHUTDOWN_GRACE_SECONDS="60",
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("faceledger")), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready within 120 s"
            time.sleep(0.1)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready == {"ready": True, "checks": {"models": "ok", "store": "ok", "ledger": "ok"}}
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"

        first, photo = (images[0].read_bytes() for images in lfw_people(data_dir, 1, 2).values())
        with httpx.Client(base_url=url, headers=headers, timeout=120) as api:
            assert api.post("/v1/collections", json={"collection_id": "c"}).status_code == 201
            image = {"image": ("a.jpg", first, "image/jpeg")}
            assert api.post("/v1/collections/c/faces", files=image).status_code == 200
            assert api.post("/v1/collections/c/search", files=image).status_code == 200
            # a stream processor whose camera is unreachable keeps running (reconnecting)
            created = api.post(
                "/v1/stream-processors",
                json={"name": "gate", "source": "rtsp://127.0.0.1:9/x", "collection_id": "c"},
            )
            assert created.status_code in (200, 201), created.text
            started = api.post(
                "/v1/stream-processors/gate/start", json={"purpose": "p", "case_reference": "k"}
            )
            assert started.status_code == 200, started.text
            deadline = time.monotonic() + 60
            # an unreachable camera: RECONNECTING once the first connection failed
            while api.get("/v1/stream-processors/gate").json()["status"] not in (
                "RUNNING",
                "RECONNECTING",
            ):
                assert time.monotonic() < deadline, "the processor did not start"
                time.sleep(0.1)
        request = httpx.Request(
            "POST",
            f"{url}/v1/collections/c/faces",
            headers=headers,
            files={"image": ("face.jpg", photo, "image/jpeg")},
        )
        body = request.read()
        half = threading.Event()
        resume = threading.Event()

        def slow_body() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            half.set()
            resume.wait(60)
            yield body[len(body) // 2 :]

        answer: list[httpx.Response] = []

        def send() -> None:
            sent_headers = {
                k: v for k, v in request.headers.items() if k.lower() != "content-length"
            }
            sent_headers["Content-Length"] = str(len(body))
            with httpx.Client(timeout=120) as client:
                answer.append(client.post(request.url, headers=sent_headers, content=slow_body()))

        sender = threading.Thread(target=send)
        sender.start()
        assert half.wait(60)
        time.sleep(0.5)  # the server has the request's head and half its body
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not _connect_refused(port):  # stops accepting at once
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        resume.set()
        sender.join(120)
        assert answer and answer[0].status_code == 200, answer and answer[0].text
        face_id = answer[0].json()["faces"][0]["face_id"]
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert "shutting down" in log

    assert (data / "indexes" / "c.index").is_file()  # the final index snapshot, current
    assert json.loads((data / "indexes" / "c.json").read_text())["count"] == 2
    with Ledger(data / "ledger.sqlite3", key_file=key_file) as ledger:
        report = ledger.verify()
        assert report.ok and report.unsigned_tail == 0  # a final signed checkpoint
        (stop,) = ledger.entries(operation="ServerShutdown")
        indexed = [
            e for e in ledger.entries(operation="IndexFaces") if e.payload.get("phase") != "intent"
        ]
        assert face_id in indexed[-1].payload["result"]["indexed"]
        assert stop.seq > indexed[-1].seq
    assert stop.payload["source"] == "system"
    assert stop.payload["result"]["stream_processors_stopping"] == ["gate"]
    # the processor's stop is recorded in the store: a restart does not find it running
    from faceledger.store.sqlite.video import SQLiteVideoStore

    row = SQLiteVideoStore(data / "faceledger.sqlite3").processor("gate")
    assert row.status == "STOPPED" and "shutting down" in row.status_message


def test_readiness_names_what_is_not_ready(tmp_path: Path) -> None:
    from faceledger.services.gateway import Gateway
    from faceledger.services.lifecycle import readiness

    gate = Gateway(Settings(data_dir=tmp_path / "d", ledger_key_file=tmp_path / "k" / "key"))
    try:
        report = readiness(gate)  # nothing loads the model pack here
    finally:
        gate.close()
    assert report["ready"] is False
    assert report["checks"]["models"] != "ok"
    assert report["checks"]["store"] == report["checks"]["ledger"] == "ok"
