"""A job a server hands back at SIGTERM is taken by the next server at once, not after its lease.

A real ``faceledger serve`` process runs a long stored-video job and is SIGTERMed while the job
runs: it exits 0 and the job is left IN_PROGRESS with its lease cleared. A second server process
on the same store then claims it as it starts (the lease is 300 s; the test waits far less). The
first server runs under another host name (``unshare --uts``) where that is possible, so the
second cannot take the job over by seeing the first one's pid is gone: only the hand-back lets
it in. Both store backends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.store.factory import open_video_store
from faceledger.store.records import IN_PROGRESS, JobRow
from helpers.live import create_key
from helpers.rekognition import rekognition_client
from helpers.serve import ServerProcess, can_fake_host

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")

FIRST_HOST = "faceledger-node-a"


def _job(settings: Settings, job_id: str) -> JobRow:
    store = open_video_store(settings)
    try:
        return store.job(job_id)
    finally:
        store.close()


def _wait(what: str, ready: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local bucket with ``long.mp4``: 20 minutes of small frames, still being analysed when
    the server is stopped."""
    folder = tmp_path_factory.mktemp("clips")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=2",
         "-t", "1200", "-pix_fmt", "yuv420p", str(folder / "long.mp4")],
        check=True,
    )  # fmt: skip
    return folder


def test_a_job_handed_back_at_sigterm_is_taken_by_the_next_server_at_once(
    tmp_path: Path, database_url: str | None, clips: Path
) -> None:
    data, key_file = tmp_path / "data", tmp_path / "keys" / "ledger.key"
    data.mkdir()
    settings = Settings(data_dir=data, database_url=database_url, ledger_key_file=key_file)
    key_id, secret = create_key(settings, "aws-code", ["search"])
    env = {
        "FACELEDGER_DATA_DIR": str(data),
        "FACELEDGER_LEDGER_KEY_FILE": str(key_file),
        "FACELEDGER_S3_LOCAL_BUCKETS": f"clips={clips}",
        "FACELEDGER_WORKERS": "1",
        "FACELEDGER_LOG_LEVEL": "INFO",
        **({"FACELEDGER_DATABASE_URL": database_url} if database_url else {}),
    }
    log = tmp_path / "servers.log"
    other_host = FIRST_HOST if can_fake_host() else None
    first = ServerProcess(env, log, other_host=other_host).start()
    try:
        client = rekognition_client(first.url, key_id, secret)
        job_id = client.start_face_detection(
            Video={"S3Object": {"Bucket": "clips", "Name": "long.mp4"}}
        )["JobId"]
        _wait(
            "the first server runs the job", lambda: _job(settings, job_id).claimed_by is not None
        )
        holder = _job(settings, job_id).claimed_by
        assert holder is not None
        if other_host is not None:
            assert holder.startswith(f"{FIRST_HOST}:")
        assert first.terminate() == 0, first.log()[-3000:]
    finally:
        first.kill()
    handed_back = _job(settings, job_id)
    assert handed_back.status == IN_PROGRESS  # not finished, not failed
    assert (handed_back.claimed_by, handed_back.claimed_at) == (None, None)  # no lease left
    assert "handed back at shutdown" in first.log()

    second = ServerProcess(env, log).start()
    try:
        _wait(
            "the second server took the job",
            lambda: (_job(settings, job_id).claimed_by or "").startswith(
                f"{socket.gethostname()}:"
            ),
        )
        taken = _job(settings, job_id)
        assert taken.status == IN_PROGRESS and taken.attempts == handed_back.attempts + 1
    finally:
        assert second.terminate() == 0, second.log()[-3000:]
    assert _job(settings, job_id).claimed_by is None  # handed back again


def test_a_running_server_takes_a_job_handed_back_elsewhere_at_its_next_poll(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server already running beside the one that stopped: its idle worker looks for unheld
    jobs every ``JOB_POLL_S`` (made short here) and runs the one handed back."""
    from faceledger.services.gateway import Gateway
    from faceledger.services.video import jobs

    monkeypatch.setattr(jobs, "JOB_POLL_S", 0.2)
    clips = tmp_path / "clips"
    clips.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=5",
         "-t", "1", "-pix_fmt", "yuv420p", str(clips / "short.mp4")],
        check=True,
    )  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(
        data_dir=data,
        database_url=database_url,
        ledger_key_file=tmp_path / "keys" / "ledger.key",
        video_dirs=[clips],
    )
    gate = Gateway(settings)
    try:
        gate.start_video_workers()  # nothing to do yet: the worker waits, polling
        store = open_video_store(settings)
        try:
            job = JobRow(
                job_id="handed-back-elsewhere",
                kind="faces",
                status=IN_PROGRESS,
                status_message="",
                video={"path": str(clips / "short.mp4")},
                params={},
                job_tag=None,
                client_token=None,
                principal="aws-code",
                caller={"principal": "aws-code", "roles": ["search"], "key_id": "K"},
                created_at=time.time(),
                finished_at=None,
                metadata=None,
                attempts=0,
            )
            store.create_job(job)  # started on another server, which ran it …
            assert store.claim_job(job.job_id, "elsewhere:1:aaaa", 300.0)
            assert store.release_claim(job.job_id, "elsewhere:1:aaaa")  # … and handed it back
            _wait("the running server ran it", lambda: store.job(job.job_id).status != IN_PROGRESS)
            assert store.job(job.job_id).status == "SUCCEEDED"
        finally:
            store.close()
    finally:
        gate.close()
        gate.close_models()
