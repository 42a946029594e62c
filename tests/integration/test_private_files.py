"""Private by default: every file FaceLedger writes is readable by its own user only.

One server run creates each kind of file (store, its WAL, index snapshots, the ledger, its key
and witness, stream outputs, the video cache) in a process whose umask was 022, over an
"older installation" whose folders and files were 0755/0644; a CLI verb writes a report.
Afterwards no file or folder may grant anything to group or others.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from faceledger.config import Settings
from faceledger.services.objects import ImageObjects
from faceledger.services.private_files import tighten
from faceledger.video.sinks import JsonlSink
from helpers.data import lfw_people
from helpers.live import create_key, start_live_server

CLI = "import sys; from faceledger.cli.main import main; main(sys.argv[1:])"


def _open_to_others(*roots: Path) -> list[str]:
    """Every path under ``roots`` (roots included) that grants any bit to group or others."""
    found = []
    for root in roots:
        paths = [root, *root.rglob("*")] if root.is_dir() else [root]
        for path in paths:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not stat.S_ISLNK(path.lstat().st_mode) and mode & 0o077:
                found.append(f"{path} {mode:o}")
    return found


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The process umask 022 (a typical login's) for the test; restored after."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def s3_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_tighten_skips_symlinks_and_reports_changes(tmp_path: Path, loose_umask: None) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub").chmod(0o755)
    (root / "sub" / "f").write_text("x")
    (root / "sub" / "f").chmod(0o664)
    (root / "link").symlink_to(outside)
    changed = tighten([], recursive_roots=[root])
    assert set(changed) == {root, root / "sub", root / "sub" / "f"}  # root: mkdir under 022
    assert stat.S_IMODE((root / "sub" / "f").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "sub").stat().st_mode) == 0o700
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # the link was not followed


def test_every_file_written_is_private(
    tmp_path: Path,
    data_dir: Path,
    loose_umask: None,
    s3_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    people = lfw_people(data_dir, min_images=2, count=2)
    data = tmp_path / "data"
    key_dir = tmp_path / "key"
    # An older installation: 0755 folders, a 0644 index snapshot and a 0644 ledger key.
    (data / "indexes").mkdir(parents=True)
    os.chmod(data, 0o755)
    legacy = data / "indexes" / "legacy.index"
    legacy.write_bytes(b"float32 embeddings of an older release")
    legacy.chmod(0o644)
    key_dir.mkdir(mode=0o700)  # the operator's choice of folder; FaceLedger keeps its files 0600
    key_file = key_dir / "ledger.key"
    key_file.write_bytes(secrets.token_bytes(32))
    key_file.chmod(0o644)
    settings = Settings(
        data_dir=data,
        ledger_key_file=key_file,
        s3_endpoint_url=s3_url,
        s3_region="us-east-1",
        s3_access_key_id="test",
        s3_secret_access_key="test",
    )
    key_id, secret = create_key(settings, "perm-admin", ["admin", "enrol", "search"])
    assert _open_to_others(data)  # created under umask 022: the test starts from a leak

    headers = {"Authorization": f"Bearer {key_id}:{secret}"}
    log_private = caplog.at_level(logging.WARNING, logger="faceledger.private")
    with log_private, start_live_server(settings) as url:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
            created = api.post("/v1/collections", json={"collection_id": "perm"})
            assert created.status_code == 201, created.text
            for name, photos in people.items():
                with photos[0].open("rb") as fh:
                    answer = api.post(
                        "/v1/collections/perm/faces",
                        files={"image": ("face.jpg", fh, "image/jpeg")},
                        data={"external_image_id": name},
                    )
                assert answer.status_code == 200, answer.text
            with next(iter(people.values()))[1].open("rb") as fh:
                found = api.post(
                    "/v1/collections/perm/search", files={"image": ("p.jpg", fh, "image/jpeg")}
                )
            assert found.status_code == 200, found.text
        # Written by this process while the server runs (its umask is the server's now).
        JsonlSink(data / "streams" / "lobby.jsonl").send({"event": "match"})
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(Bucket="videos")
        s3.put_object(Bucket="videos", Key="clip.mp4", Body=b"\x00" * 4096)
        cached = ImageObjects(settings).video_file(
            "videos", "clip.mp4", None, cache_dir=data / "video-cache", max_bytes=1 << 20
        )
        assert cached.is_relative_to(data / "video-cache")
        live = {p.name for p in data.rglob("*")}  # the WAL is gone once the server stops
        assert any(name.endswith("-wal") for name in live), live
        assert _open_to_others(data) == []
    assert any("made" in r.getMessage() and "private" in r.getMessage() for r in caplog.records)

    # CLI verbs started with umask 022: one creates a fresh installation, one writes a report.
    cli_data = tmp_path / "cli-data"
    report = tmp_path / "reports" / "ledger.jsonl"
    report.parent.mkdir(mode=0o700)
    env = {
        **os.environ,
        "FACELEDGER_DATA_DIR": str(cli_data),
        "FACELEDGER_LEDGER_KEY_FILE": str(key_file),
    }
    for verb in (["collections", "create", "cli"], ["audit", "export", "-o", str(report)]):
        done = subprocess.run(
            [sys.executable, "-c", CLI, *verb],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: os.umask(0o022),
        )
        assert done.returncode == 0, done.stderr
    assert report.stat().st_size > 0
    assert (cli_data / "faceledger.sqlite3").is_file()

    kinds = {p.name for p in data.rglob("*")}
    assert {
        "faceledger.sqlite3",
        "ledger.sqlite3",
        "token.key",
        "streams",
        "lobby.jsonl",
    } <= kinds, kinds
    assert any(p.suffix == ".index" and p != legacy for p in (data / "indexes").iterdir())
    assert list(key_dir.glob("ledger-*.witness.json")), "the ledger wrote no witness"
    assert _open_to_others(data, cli_data, key_dir, report.parent) == []
