"""The shared SigV4 replay check at the store: each backend's ``sigv4_seen`` table.

Two key services on one store stand for two server processes (each opens its own connections).
A key is accepted once by either; a replay is refused as one, the first time marked as such
(so its refusal is ledgered once); the maintenance purge forgets expired keys and raises the
horizon, before which a key is refused as too old rather than accepted unchecked; a store that
fails refuses every request.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.errors import (
    InvalidSignatureError,
    ReplayCheckUnavailableError,
    ReplayedRequestError,
)
from faceledger.services.gateway import Gateway
from faceledger.services.keys import KeyService
from faceledger.services.replays import PURGE_GRACE_SECONDS, ReplayGuard
from faceledger.store.factory import SQLITE_FILE

SKEW_S = 300


@pytest.fixture
def two(tmp_path: Path, database_url: str | None) -> Iterator[tuple[KeyService, KeyService]]:
    """Two key services (two processes' worth of connections) on one store, each backend."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    first, second = KeyService(settings), KeyService(settings)
    yield first, second
    first.close()
    second.close()


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def test_a_key_is_accepted_once_by_any_process(two: tuple[KeyService, KeyService]) -> None:
    a, b = two
    now = _at(time.time())
    a.admit_signature("sig-1\ninvocation-1\nattempt=1", now)
    b.admit_signature("sig-1\ninvocation-2\nattempt=1", now)  # another SDK call, same second
    with pytest.raises(ReplayedRequestError, match="already received") as first:
        b.admit_signature("sig-1\ninvocation-1\nattempt=1", now)
    assert first.value.first and first.value.code == "InvalidSignatureException"
    for service in (a, b):  # later copies: still refused, no longer the first
        with pytest.raises(ReplayedRequestError) as again:
            service.admit_signature("sig-1\ninvocation-1\nattempt=1", now)
        assert not again.value.first


def test_the_purge_forgets_expired_keys_and_refuses_what_it_cannot_check(
    two: tuple[KeyService, KeyService],
) -> None:
    a, b = two
    now_s = time.time()
    old = _at(now_s - 2 * SKEW_S)  # its signature expired SKEW_S ago
    fresh = _at(now_s)
    a.admit_signature("old", old)
    a.admit_signature("fresh", fresh)
    assert a.replays.purge(now_s) == 1  # "old" went; "fresh" stays
    with pytest.raises(ReplayedRequestError):
        b.admit_signature("fresh", fresh)
    # "old" (and anything else expiring before the purge's cut-off) can no longer be checked
    for key in ("old", "never seen"):
        with pytest.raises(InvalidSignatureError, match="too old") as refused:
            b.admit_signature(key, old)
        assert not isinstance(refused.value, ReplayedRequestError)
    # the horizon never moves back: a purge with an earlier clock keeps it
    assert b.replays.purge(now_s - 3 * SKEW_S) == 0
    with pytest.raises(InvalidSignatureError, match="too old"):
        b.admit_signature("old", old)
    # within the grace after expiry a key is kept
    grace = _at(now_s - SKEW_S - PURGE_GRACE_SECONDS / 2)
    b.admit_signature("in grace", grace)
    assert a.replays.purge(now_s) == 0
    with pytest.raises(ReplayedRequestError):
        a.admit_signature("in grace", grace)


class _BrokenStore:
    """A key store whose database does not answer."""

    def remember_signature(self, key_sha256: bytes, expires_at: float) -> str:
        raise OSError("connection refused")


def test_a_failing_store_refuses_rather_than_admits() -> None:
    guard = ReplayGuard(_BrokenStore(), max_skew_seconds=SKEW_S)  # type: ignore[arg-type]
    with pytest.raises(ReplayCheckUnavailableError) as refused:
        guard.admit("sig", _at(time.time()))
    assert (refused.value.code, refused.value.http_status) == ("ThrottlingException", 503)


def _rows(settings: Settings) -> int:
    """Test-only: how many keys the ``sigv4_seen`` table holds."""
    sql = "SELECT count(*) FROM sigv4_seen"
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as db:
            row = db.execute(sql).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(settings.data_dir / SQLITE_FILE)) as db:
            row = db.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_the_maintenance_pass_purges_expired_keys(tmp_path: Path, database_url: str | None) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, database_url=database_url)
    gate = Gateway(settings)
    try:
        now_s = time.time()
        expired = _at(now_s - SKEW_S - PURGE_GRACE_SECONDS - 1)
        gate.authentication.admit_signature("expired", expired)
        gate.authentication.admit_signature("live", _at(now_s))
        assert _rows(settings) == 2
        gate.maintain()
        assert _rows(settings) == 1
        with pytest.raises(ReplayedRequestError):
            gate.authentication.admit_signature("live", _at(now_s))
        with pytest.raises(InvalidSignatureError, match="too old"):
            gate.authentication.admit_signature("expired", expired)
    finally:
        gate.close()
