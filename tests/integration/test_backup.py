"""``faceledger backup`` / ``restore`` on the embedded backend.

- Under load: a real server enrols and searches from several threads while the backup runs;
  the backup is restored elsewhere (a fresh data folder, a key folder holding only the key, as
  after a lost disk) through the CLI; every face acknowledged before the backup started is
  there, the ledger verifies, and a server on the restored folder finds a face with the same
  access key.
- The ledger's protections: a newer ledger is never overwritten; a key folder whose tip names
  newer records refuses the restore unless ``--accept-older-ledger``, which keeps the old tip
  and witness aside and records the acceptance; a damaged file or a missing key is refused
  before anything changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from faceledger.audit import Ledger
from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent
from faceledger.services.backup import BackupError, restore_backup, take_backup
from faceledger.services.backup_manifest import Manifest
from faceledger.services.gateway import local_operator
from faceledger.services.keys import KeyService
from faceledger.store.sqlite.faces import SQLiteStore
from helpers.data import lfw_people
from helpers.live import start_live_server

LOAD_THREADS = 3


def _cli(*args: str, data: Path, key_file: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FACELEDGER_DATA_DIR=str(data), FACELEDGER_LEDGER_KEY_FILE=str(key_file))
    return subprocess.run(
        [str(Path(sys.executable).with_name("faceledger")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _client(url: str, key: tuple[str, str]) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def _face_ids(data: Path, collection: str) -> set[str]:
    store = SQLiteStore(data / "faceledger.sqlite3")
    return {row.face.face_id for row in store.list_faces(collection, after_row=0, limit=100_000)}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "ledger.key"


def test_backup_under_load_restores_elsewhere(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "live", default_threshold_floor=80, ledger_key_file=key_file
    )
    keys = KeyService(settings)
    try:
        record, secret = keys.create("backup-test", ["admin", "enrol", "search"])
    finally:
        keys.close()
    key = (record.key_id, secret)
    people = lfw_people(data_dir, 2, 24)
    names = sorted(people)
    acked: dict[str, float] = {}  # FaceId -> when its IndexFaces answer arrived (monotonic order)
    order = [0]
    lock = threading.Lock()
    stop = threading.Event()
    searches = [0]
    inflight = [0]

    with start_live_server(settings) as url:
        rek = _client(url, key)
        rek.create_collection(CollectionId="c")
        first = rek.index_faces(
            CollectionId="c", Image={"Bytes": people[names[0]][0].read_bytes()}, MaxFaces=1
        )
        acked[first["FaceRecords"][0]["Face"]["FaceId"]] = 0

        def load(k: int) -> None:
            client = _client(url, key)
            jobs = names[1 + k :: LOAD_THREADS]
            i = 0
            while not stop.is_set() or i < 2:  # at least two enrolments per thread
                name = jobs[i % len(jobs)]
                photo = people[name][(i // len(jobs)) % 2].read_bytes()
                with lock:
                    inflight[0] += 1
                answer = client.index_faces(
                    CollectionId="c", Image={"Bytes": photo}, ExternalImageId=name, MaxFaces=1
                )
                with lock:
                    order[0] += 1
                    for face in answer["FaceRecords"]:
                        acked[face["Face"]["FaceId"]] = order[0]
                client.search_faces_by_image(CollectionId="c", Image={"Bytes": photo})
                with lock:
                    searches[0] += 1
                    inflight[0] -= 1
                i += 1

        with ThreadPoolExecutor(LOAD_THREADS) as pool:
            running = [pool.submit(load, k) for k in range(LOAD_THREADS)]
            while True:  # let the load get going: some faces in, searches answered
                with lock:
                    if len(acked) >= 6 and searches[0] >= 3:
                        break
                time.sleep(0.05)
            with lock:
                before = set(acked)  # acknowledged before the backup started
                busy = inflight[0]
            backup = _cli(
                "backup", str(tmp_path / "backup"), data=settings.data_dir, key_file=key_file
            )
            with lock:
                busy = max(busy, inflight[0])
            stop.set()
            for future in running:
                future.result()
        assert backup.returncode == 0, backup.stderr
        assert busy >= 1  # requests were in flight while the backup ran
    manifest = Manifest.read(tmp_path / "backup")
    # the stopped server left index snapshots: a later backup carries them
    later = take_backup(settings, tmp_path / "backup-later", local_operator())
    assert {"indexes/c.index", "indexes/c.json"} <= {f.path for f in later.files}
    assert manifest.ledger_seq >= manifest.ledger_seq_before_store > 0
    assert json.loads(backup.stdout)["ledger_key_id"] == manifest.ledger_key_id != ""
    assert "NOT in this backup" in backup.stderr
    assert not any("ledger.key" in f.path for f in manifest.files)

    # -- a disk died: a new data folder, and only the key from the key backup -----------------
    new_key = tmp_path / "restored-keys" / "ledger.key"
    new_key.parent.mkdir(mode=0o700)
    shutil.copy2(key_file, new_key)
    restored = tmp_path / "restored"
    done = _cli("restore", str(tmp_path / "backup"), data=restored, key_file=new_key)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["verify"]["ok"] is True
    assert summary["superseded"] == []
    assert before <= _face_ids(restored, "c")  # every face acknowledged before the backup

    verified = _cli("audit", "verify", data=restored, key_file=new_key)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with Ledger(restored / "ledger.sqlite3", key_file=new_key) as ledger:
        (entry,) = ledger.entries(operation="RestoreBackup")
        assert entry.payload["result"]["backup_ledger_seq"] == manifest.ledger_seq
        assert entry.payload["result"]["accepted_older_ledger"] is False

    # -- a server on the restored folder answers with the same access key -------------------
    face_id = next(iter(sorted(before, key=acked.__getitem__)))
    restored_settings = Settings(
        data_dir=restored, default_threshold_floor=80, ledger_key_file=new_key
    )
    with start_live_server(restored_settings) as url:
        found = _client(url, key).search_faces_by_image(
            CollectionId="c", Image={"Bytes": people[names[0]][1].read_bytes()}
        )
    assert face_id in {m["Face"]["FaceId"] for m in found["FaceMatches"]}


# -- the ledger's protections (no models needed) -------------------------------------------
def _event(n: int) -> AuditEvent:
    return AuditEvent.of(local_operator(), "Test", result={"n": n})


@pytest.fixture
def backed_up(tmp_path: Path, key_file: Path) -> Iterator[tuple[Settings, Path]]:
    """A data folder whose ledger has 5 events, backed up to ``tmp_path / "backup"``, and
    3 more events appended after the backup."""
    settings = Settings(data_dir=tmp_path / "live", ledger_key_file=key_file)
    with Ledger.from_settings(settings) as ledger:
        ledger.append_many([_event(n) for n in range(5)])
    take_backup(settings, tmp_path / "backup", local_operator())
    with Ledger.from_settings(settings) as ledger:
        ledger.append_many([_event(n) for n in range(5, 8)])
    yield settings, tmp_path / "backup"


def test_restore_refuses_to_overwrite_a_newer_ledger(backed_up: tuple[Settings, Path]) -> None:
    settings, backup = backed_up
    with pytest.raises(BackupError, match="newer than the backup"):
        restore_backup(settings, backup, local_operator(), accept_older_ledger=True)


def test_older_ledger_needs_the_flag_and_is_recorded(
    backed_up: tuple[Settings, Path], tmp_path: Path, key_file: Path
) -> None:
    _, backup = backed_up
    elsewhere = Settings(data_dir=tmp_path / "elsewhere", ledger_key_file=key_file)
    manifest = Manifest.read(backup)
    done = _cli("restore", str(backup), data=elsewhere.data_dir, key_file=key_file)
    assert done.returncode == 2
    assert "--accept-older-ledger" in done.stderr and "names record" in done.stderr
    assert not (elsewhere.data_dir / "ledger.sqlite3").exists()  # nothing changed

    result = restore_backup(elsewhere, backup, local_operator(), accept_older_ledger=True)
    assert result.report.ok, result.report.reason
    assert len(result.superseded) == 2  # the tip and the witness, kept as evidence
    assert all(Path(p).is_file() and ".superseded-" in p for p in result.superseded)
    with Ledger.from_settings(elsewhere) as ledger:
        record = ledger.entry_at(result.restore_seq)
        assert record is not None and record.payload["operation"] == "RestoreBackup"
        given_up = record.payload["result"]["given_up"]
        assert record.payload["result"]["accepted_older_ledger"] is True
        assert min(g["named_seq"] for g in given_up) > manifest.ledger_seq
        assert ledger.verify().ok


def test_damaged_backup_and_missing_key_are_refused(
    backed_up: tuple[Settings, Path], tmp_path: Path
) -> None:
    _, backup = backed_up
    manifest = Manifest.read(backup)
    elsewhere = Settings(
        data_dir=tmp_path / "elsewhere", ledger_key_file=tmp_path / "nokey" / "ledger.key"
    )
    with pytest.raises(BackupError, match=f"id {manifest.ledger_key_id} is not at"):
        restore_backup(elsewhere, backup, local_operator())
    with open(backup / "ledger.sqlite3", "r+b") as damaged:
        damaged.seek(200)
        damaged.write(b"\xff")
    with pytest.raises(BackupError, match="does not match its manifest digest"):
        restore_backup(elsewhere, backup, local_operator())
    assert not elsewhere.data_dir.exists()


# -- PostgreSQL: pg_dump of one snapshot, pg_restore into a new database --------------------
def test_postgres_backup_and_restore(
    migrated_database: str, postgres_database: str, tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    from faceledger.services.gateway import Gateway

    settings = Settings(
        data_dir=tmp_path / "live",
        database_url=migrated_database,
        ledger_key_file=key_file,
        default_threshold_floor=80,
    )
    people = lfw_people(data_dir, 2, 3)
    names = sorted(people)
    operator = local_operator()
    gate = Gateway(settings)
    try:
        gate.create_collection(operator, "c")
        enrolled = {
            gate.index_faces(operator, "c", people[name][0].read_bytes(), max_faces=1)
            .face_records[0][0]
            .face_id
            for name in names[:2]
        }
        manifest = take_backup(settings, tmp_path / "backup", operator)
        gate.index_faces(operator, "c", people[names[2]][0].read_bytes(), max_faces=1)
    finally:
        gate.close()
    assert manifest.backend == "postgresql" and manifest.ledger_seq > 0
    assert [f.path for f in manifest.files][-1:] == ["database.dump"]

    with pytest.raises(BackupError, match="newer than the backup"):
        restore_backup(settings, tmp_path / "backup", operator, accept_older_ledger=True)
    target = Settings(
        data_dir=tmp_path / "restored",
        database_url=postgres_database,
        ledger_key_file=key_file,
        default_threshold_floor=80,
    )
    with pytest.raises(BackupError, match="--accept-older-ledger"):
        restore_backup(target, tmp_path / "backup", operator)
    result = restore_backup(target, tmp_path / "backup", operator, accept_older_ledger=True)
    assert result.report.ok, result.report.reason
    gate = Gateway(target)
    try:
        faces = gate.list_faces(operator, "c").faces
        assert {f.face_id for f in faces} == enrolled
        found = gate.search_faces_by_image(operator, "c", people[names[0]][1].read_bytes())
        assert found.matches and found.matches[0].face.face_id in enrolled
    finally:
        gate.close()
