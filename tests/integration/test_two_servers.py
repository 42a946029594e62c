"""Two ``faceledger serve`` processes on different ports, one PostgreSQL database.

Real subprocesses (as two replicas behind a load balancer would be), each with its own data
directory, sharing only ``FACELEDGER_DATABASE_URL`` and the ledger key. boto3 talks to both
with one access key made by the key service:

- a face enrolled through one server is found through the other at once;
- concurrent enrolment through both loses nothing (every acknowledged FaceId is listed, with
  pages fetched alternately from both: a NextToken from one server works on the other);
- every answered request is in the ledger, which is one chain that verifies.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from faceledger.audit import Ledger
from faceledger.config import Settings
from faceledger.services.keys import KeyService
from helpers.data import lfw_people

CLIENTS_PER_SERVER = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data: Path, url: str, key_file: Path, port: int) -> subprocess.Popen[bytes]:
    data.mkdir(parents=True, exist_ok=True)  # a replica's local folder (models, video state)
    env = dict(
        os.environ,
        FACELEDGER_DATA_DIR=str(data),
        FACELEDGER_DATABASE_URL=url,
        FACELEDGER_LEDGER_KEY_FILE=str(key_file),
        FACELEDGER_PORT=str(port),
        FACELEDGER_LOG_LEVEL="WARNING",
        FACELEDGER_DEFAULT_THRESHOLD_FLOOR="80",
        FACELEDGER_WORKERS="1",
    )
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("faceledger")), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(f"a server exited during start-up:\n{err[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server on port {port} did not answer /healthz within 120 s")


def _client(port: int, key: tuple[str, str]) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 2}, read_timeout=120),
    )


@pytest.fixture
def two_servers(
    migrated_database: str, tmp_path: Path
) -> Iterator[tuple[Settings, tuple[str, str], list[int]]]:
    """``(settings, access key, [port A, port B])``: two servers against one database."""
    key_file = tmp_path / "keys" / "ledger.key"
    settings = Settings(
        data_dir=tmp_path / "a", database_url=migrated_database, ledger_key_file=key_file
    )
    keys = KeyService(settings)
    try:
        record, secret = keys.create("two-servers", ["admin", "enrol", "search", "audit"])
    finally:
        keys.close()
    ports = [_free_port(), _free_port()]
    procs = [
        _start(tmp_path / name, migrated_database, key_file, port)
        for name, port in zip(("a", "b"), ports, strict=True)
    ]
    try:
        for proc, port in zip(procs, ports, strict=True):
            _wait_ready(proc, port)
        yield settings, (record.key_id, secret), ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def test_two_servers_share_one_database_and_one_ledger(
    two_servers: tuple[Settings, tuple[str, str], list[int]], data_dir: Path
) -> None:
    settings, key, (port_a, port_b) = two_servers
    a, b = _client(port_a, key), _client(port_b, key)
    people = lfw_people(data_dir, 2, 1 + 2 * CLIENTS_PER_SERVER * 2)
    names = sorted(people)
    answered: list[str] = []  # request ids of successful answers, from both servers

    def ok(answer: dict[str, Any]) -> dict[str, Any]:
        answered.append(answer["ResponseMetadata"]["RequestId"])
        return answer

    # -- enrolled through A, found through B at once ------------------------------------------
    ok(a.create_collection(CollectionId="shared"))
    first = names[0]
    indexed = ok(
        a.index_faces(
            CollectionId="shared",
            Image={"Bytes": people[first][0].read_bytes()},
            ExternalImageId=first,
            MaxFaces=1,
        )
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    found = ok(
        b.search_faces_by_image(
            CollectionId="shared", Image={"Bytes": people[first][1].read_bytes()}
        )
    )
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]][:1] == [face_id]
    assert ok(b.describe_collection(CollectionId="shared"))["FaceCount"] == 1

    # -- concurrent enrolment through both servers loses nothing --------------------------------
    jobs = [(name, image) for name in names[1:] for image in people[name][:2]]
    acked: dict[str, str] = {}  # FaceId -> ExternalImageId
    via: dict[str, tuple[int, Path]] = {}  # FaceId -> (the port that enrolled it, the photo)
    lock = threading.Lock()

    def enrol(k: int) -> None:
        port = port_a if k % 2 == 0 else port_b
        rek = _client(port, key)
        for name, image in jobs[k :: 2 * CLIENTS_PER_SERVER]:
            answer = ok(
                rek.index_faces(
                    CollectionId="shared",
                    Image={"Bytes": image.read_bytes()},
                    ExternalImageId=name,
                    MaxFaces=1,
                    QualityFilter="NONE",  # every photo enrolled (AUTO refuses a blurred one)
                )
            )
            with lock:
                for face in answer["FaceRecords"]:
                    acked[face["Face"]["FaceId"]] = name
                    via[face["Face"]["FaceId"]] = (port, image)

    with ThreadPoolExecutor(2 * CLIENTS_PER_SERVER) as pool:
        list(pool.map(enrol, range(2 * CLIENTS_PER_SERVER)))
    assert len(acked) == len(jobs)  # one face per LFW photo
    for servers in ((a, b), (b, a)):  # pages alternate: a NextToken of one works on the other
        listed: dict[str, str] = {}
        kwargs: dict[str, Any] = {"CollectionId": "shared", "MaxResults": 7}
        for page_number in range(100):
            page = ok(servers[page_number % 2].list_faces(**kwargs))
            listed.update((f["FaceId"], f["ExternalImageId"]) for f in page["Faces"])
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]
        assert page_number >= 3  # several pages, so tokens did cross servers
        assert listed == {**acked, face_id: first}
    # a face enrolled concurrently through one server is found through the other
    for enrolled_on, searched in ((port_a, b), (port_b, a)):
        fid = min(f for f, (port, _) in via.items() if port == enrolled_on)
        photo = via[fid][1].read_bytes()
        found = ok(searched.search_faces_by_image(CollectionId="shared", Image={"Bytes": photo}))
        assert fid in {m["Face"]["FaceId"] for m in found["FaceMatches"]}

    # -- one ledger: every answer recorded once, one chain -------------------------------------
    ledger = Ledger.from_settings(settings)
    try:
        report = ledger.verify()
        assert report.ok, report.reason
        records = [e.event for e in ledger.entries()]
    finally:
        ledger.close()
    by_request = {r.request_id: r for r in records if r is not None}
    missing = [rid for rid in answered if rid not in by_request]
    assert not missing, f"answered but not ledgered: {missing[:5]}"
    index_ok = [r for r in records if r and r.operation == "IndexFaces" and r.outcome == "ok"]
    assert len(index_ok) == 1 + len(jobs)
