"""kill -9 of a serving process: no response without a ledger record, no record lost.

A real ``faceledger serve`` is driven by several boto3 clients (CreateCollection, ListFaces,
DetectFaces, IndexFaces, SearchFacesByImage); it is killed with SIGKILL at a random moment,
restarted, and killed again. After each kill every request that received a successful
response must have its record (by request id) in the ledger, and the ledger must verify.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.services.keys import KeyService

KILLS = 3
CLIENTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data: Path, key_file: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        FACELEDGER_DATA_DIR=str(data),
        FACELEDGER_LEDGER_KEY_FILE=str(key_file),
        FACELEDGER_PORT=str(port),
        FACELEDGER_LOG_LEVEL="WARNING",
        FACELEDGER_DEFAULT_THRESHOLD_FLOOR="80",
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("faceledger")), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the server did not start")


def _client(port: int, key: tuple[str, str]) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20),
    )


def _one_call(rek: Any, pick: int, image: bytes, rng: random.Random) -> Any:
    if pick == 0:
        return rek.list_faces(CollectionId="crash", MaxResults=5)
    if pick == 1:
        return rek.detect_faces(Image={"Bytes": image})
    if pick == 2:
        return rek.index_faces(
            CollectionId="crash",
            Image={"Bytes": image},
            ExternalImageId=f"img-{rng.randrange(10**9)}",
        )
    return rek.search_faces_by_image(CollectionId="crash", Image={"Bytes": image})


def _drive(
    port: int,
    key: tuple[str, str],
    images: list[bytes],
    seed: int,
    acked: list[str],
    stop: threading.Event,
) -> None:
    """Call the server until it dies; collect the request ids of successful answers."""
    rng = random.Random(seed)
    rek = _client(port, key)
    while not stop.is_set():
        image, pick = rng.choice(images), rng.randrange(4)
        try:
            answer = _one_call(rek, pick, image, rng)
        except Exception:
            if stop.is_set():
                return
            time.sleep(0.01)
            continue
        acked.append(answer["ResponseMetadata"]["RequestId"])


def test_every_answered_request_is_in_the_ledger_after_kill_9(
    tmp_path: Path, data_dir: Path
) -> None:
    data, key_file = tmp_path / "data", tmp_path / "keys" / "ledger.key"
    settings = Settings(data_dir=data, ledger_key_file=key_file)
    key_record, secret = KeyService(settings).create("crash-test", ["admin", "enrol", "search"])
    key = (key_record.key_id, secret)
    root = data_dir / "lfw-devtrain" / "images"
    images = [p.read_bytes() for p in sorted(root.glob("A*/*_0001.jpg"))[:12]]
    rng = random.Random(2026)
    acked: list[str] = []
    for round_number in range(KILLS):
        port = _free_port()
        server = _serve(data, key_file, port)
        if round_number == 0:
            _client(port, key).create_collection(CollectionId="crash")
        stop = threading.Event()
        mine: list[str] = []
        threads = [
            threading.Thread(
                target=_drive, args=(port, key, images, round_number * 10 + i, mine, stop)
            )
            for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(2.0, 5.0))
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert mine, f"round {round_number}: no request was answered before the kill"
        acked += mine

        ledger = Ledger.from_settings(settings)
        try:
            report = ledger.verify()
            assert report.ok, f"round {round_number}: {report}"
            recorded = {e.event.request_id for e in ledger.entries()}
        finally:
            ledger.close()
        missing = [r for r in acked if r not in recorded]
        assert not missing, f"round {round_number}: answered but not ledgered: {missing[:5]}"
