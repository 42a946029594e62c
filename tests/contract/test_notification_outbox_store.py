"""The video store's notification outbox and job hand-back, on both backends (``store_backend``).

- a kept notification is due at once, claimed by one sender at a time (another sender waits
  for the claim's lease or its release), counted when an attempt fails, deleted once
  delivered, and kept as GIVEN_UP after the last attempt;
- a store opened again (a restarted server) still holds what was pending;
- a job handed back by its worker (``release_claim``) has no lease any more: another owner
  claims it at once, while a job another owner still holds cannot be claimed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.store.base import VideoStore
from faceledger.store.factory import open_video_store
from faceledger.store.records import GIVEN_UP, IN_PROGRESS, PENDING, JobRow, OutboxRow

LEASE_S = 60.0


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    (tmp_path / "data").mkdir()
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def store(settings: Settings) -> Iterator[VideoStore]:
    opened = open_video_store(settings)
    yield opened
    opened.close()


def _row(message_id: str, *, due: float) -> OutboxRow:
    return OutboxRow(
        message_id=message_id,
        job_id="job-1",
        topic_arn="arn:aws:sns:us-east-1:111122223333:done",
        url="http://127.0.0.1:9/hook",
        body='{"Message":"{\\"JobId\\":\\"job-1\\"}","Type":"Notification"}',
        created_at=due,
        next_attempt_at=due,
    )


def test_a_notification_is_claimed_once_retried_kept_over_a_restart_and_given_up(
    settings: Settings, store: VideoStore
) -> None:
    now = time.time()
    store.add_notification(_row("m1", due=now))
    store.add_notification(_row("m1", due=now))  # the same message twice: kept once
    store.add_notification(_row("m2", due=now + 3600))  # not due yet
    assert [r.message_id for r in store.notifications()] == ["m1", "m2"]
    assert [r.message_id for r in store.due_notifications(now + 1, LEASE_S, 10)] == ["m1"]
    assert store.next_notification_at() == pytest.approx(now)

    assert store.claim_notification("m1", "server-a", now, LEASE_S)
    assert not store.claim_notification("m1", "server-b", now + 1, LEASE_S)  # held
    assert store.due_notifications(now + 1, LEASE_S, 10) == []  # nor listed as due
    assert store.claim_notification("m1", "server-b", now + LEASE_S + 1, LEASE_S)  # lease out
    store.notification_attempt_failed("m1", attempts=1, next_attempt_at=now + 2, error="refused")
    (row,) = [r for r in store.notifications() if r.message_id == "m1"]
    assert (row.attempts, row.status, row.last_error, row.claimed_by) == (
        1,
        PENDING,
        "refused",
        None,
    )
    assert store.due_notifications(now + 1, LEASE_S, 10) == []  # the back-off
    assert [r.message_id for r in store.due_notifications(now + 2, LEASE_S, 10)] == ["m1"]

    # a stopping sender hands its claims back; a restarted server's store still has them
    assert store.claim_notification("m1", "server-a", now + 2, LEASE_S)
    assert store.release_notifications("server-a") == 1
    store.close()
    reopened = open_video_store(settings)
    try:
        assert [r.message_id for r in reopened.due_notifications(now + 2, LEASE_S, 10)] == ["m1"]
        assert reopened.claim_notification("m1", "server-b", now + 2, LEASE_S)
        reopened.notification_attempt_failed(
            "m1", attempts=2, next_attempt_at=None, error="refused again"
        )
        (given_up,) = reopened.notifications(status=GIVEN_UP)
        assert (given_up.message_id, given_up.attempts, given_up.last_error) == (
            "m1",
            2,
            "refused again",
        )
        assert reopened.due_notifications(now + 10_000, LEASE_S, 10)[0].message_id == "m2"
        assert reopened.claim_notification("m2", "server-b", now, LEASE_S)
        reopened.notification_delivered("m2")
        assert [r.message_id for r in reopened.notifications()] == ["m1"]  # delivered: gone
        assert reopened.next_notification_at() is None  # nothing pending
    finally:
        reopened.close()


def _job(job_id: str) -> JobRow:
    return JobRow(
        job_id=job_id,
        kind="faces",
        status=IN_PROGRESS,
        status_message="",
        video={"path": "clip.mp4"},
        params={},
        job_tag=None,
        client_token=None,
        principal="p",
        caller={"principal": "p", "roles": ["search"], "key_id": "K"},
        created_at=time.time(),
        finished_at=None,
        metadata=None,
        attempts=0,
    )


def test_a_job_handed_back_is_claimed_by_another_owner_at_once(store: VideoStore) -> None:
    store.create_job(_job("j1"))
    assert store.claim_job("j1", "host-a:1:aa", 300.0)
    assert not store.claim_job("j1", "host-b:2:bb", 300.0)  # leased to host-a
    assert not store.release_claim("j1", "host-b:2:bb")  # only its holder hands it back
    assert store.release_claim("j1", "host-a:1:aa")
    (job,) = store.unfinished_jobs()
    assert (job.claimed_by, job.claimed_at, job.status) == (None, None, IN_PROGRESS)
    assert store.claim_job("j1", "host-b:2:bb", 300.0)  # at once, not after the lease
    store.finish_job("j1", status="SUCCEEDED", results=[])
    assert not store.release_claim("j1", "host-b:2:bb")  # a finished job is not handed back
