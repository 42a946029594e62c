"""A signed request is accepted once by the whole installation, not once per server process.

Two real ``faceledger serve`` processes on one store — one SQLite data folder, or one
PostgreSQL database with a data folder each — and boto3 talking to them:

- a boto3 request answered by server A, re-sent byte for byte to server B, is refused as a
  replay, and that refusal is in the ledger under the key that signed it (once: a second copy
  is refused without another record);
- boto3 keeps working: two identical calls in the same second (one signature, different
  invocation ids, as behind a load balancer) are both answered, one by each server;
- a restart keeps what was seen: a replay sent to the restarted server is refused;
- when the check cannot be made (the table gone from under a server), the request is refused
  with ``ThrottlingException`` (HTTP 503, which SDKs retry), never run unchecked.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from botocore.exceptions import ClientError

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.store.factory import SQLITE_FILE
from helpers.forgery import Wire, boto3_client, captured
from helpers.live import create_key, start_live_server
from helpers.serve import ServerProcess

PRINCIPAL = "replay-officer"


@contextlib.contextmanager
def serve_process(data_dir: Path, database_url: str | None) -> Iterator[str]:
    """``faceledger serve`` as a process of its own on ``data_dir`` (and the database); its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"FACELEDGER_DATA_DIR": str(data_dir), "FACELEDGER_LOG_LEVEL": "WARNING"}
    if database_url:
        env["FACELEDGER_DATABASE_URL"] = database_url
    server = ServerProcess(env, data_dir.parent / f"serve-{data_dir.name}.log")
    try:
        yield server.start().url
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.terminate()


class _Held(Exception):
    """Raised by the ``before-send`` hook: the request is kept, not sent."""


@contextlib.contextmanager
def _held(client: Any) -> Iterator[list[Wire]]:
    """Requests ``client`` signs, as they would go over the wire, without sending them."""
    with captured(client) as wires:

        def hold(**_: Any) -> None:
            raise _Held

        client.meta.events.register_last("before-send.rekognition.*", hold)
        try:
            yield wires
        finally:
            client.meta.events.unregister("before-send.rekognition.*", hold)


def _to(wire: Wire, url: str) -> Wire:
    """The same bytes (headers, ``Host`` included, and body) sent to another server."""
    return Wire(url + "/", wire.headers, wire.body)


def _header(wire: Wire, name: str) -> str:
    return next(v for k, v in wire.headers if k.lower() == name.lower())


def _records(settings: Settings) -> list[tuple[str, str]]:
    ledger = Ledger.from_settings(settings)
    try:
        return [(e.event.operation, e.event.outcome) for e in ledger.entries(principal=PRINCIPAL)]
    finally:
        ledger.close()


def _refused_as_replay(wire: Wire) -> None:
    answer = wire.send()
    assert answer.status_code == 400, answer.text
    assert answer.json()["__type"] == "InvalidSignatureException"
    assert "already received" in answer.json()["message"]


def test_a_replay_to_another_server_is_refused_and_ledgered(
    tmp_path: Path, database_url: str | None
) -> None:
    data_a = tmp_path / "a"
    data_b = data_a if database_url is None else tmp_path / "b"  # SQLite: one data folder
    settings = Settings(data_dir=data_a, database_url=database_url)
    key = create_key(settings, PRINCIPAL, ["search"])
    with serve_process(data_a, database_url) as a:
        with serve_process(data_b, database_url) as b:
            # answered by A, replayed verbatim to B: refused, and ledgered once
            client = boto3_client(a, key)
            with captured(client) as sent:
                client.list_collections()
            _refused_as_replay(_to(sent[0], b))
            _refused_as_replay(_to(sent[0], b))  # again: refused, no second record
            _refused_as_replay(_to(sent[0], a))  # and by A itself

            # two identical calls in one second: one signature, two invocation ids
            same = boto3_client(a, key)
            now = datetime.now(UTC)
            with (
                mock.patch.object(botocore.auth, "get_current_datetime", return_value=now),
                _held(same) as twins,
            ):
                for _ in range(2):
                    with pytest.raises(_Held):
                        same.list_collections()
            assert _header(twins[0], "Authorization") == _header(twins[1], "Authorization")
            first, second = _to(twins[0], a).send(), _to(twins[1], b).send()
            assert (first.status_code, second.status_code) == (200, 200), second.text

        # B restarted (A still up): what B saw before is still refused
        with serve_process(data_b, database_url) as b_again:
            _refused_as_replay(_to(twins[1], b_again))  # answered by B before its restart
            _refused_as_replay(_to(sent[0], b_again))

    assert _records(settings) == [
        ("ListCollections", "ok"),  # boto3 through A
        ("ListCollections", "InvalidSignatureException"),  # its first replay, to B
        ("ListCollections", "ok"),  # the twins, A and B
        ("ListCollections", "ok"),
        ("ListCollections", "InvalidSignatureException"),  # the second twin's replay
    ]


def _rename_seen_table(settings: Settings, old: str, new: str) -> None:
    """Test-only: make the replay table vanish (or come back) under a running server."""
    sql = f"ALTER TABLE {old} RENAME TO {new}"
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as db:
            db.execute(sql)
        return
    with contextlib.closing(sqlite3.connect(settings.data_dir / SQLITE_FILE)) as db:
        db.execute(sql)


def test_a_replay_check_that_cannot_be_made_refuses_the_request(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    key = create_key(settings, PRINCIPAL, ["search"])
    with start_live_server(settings) as url:
        client = boto3_client(url, key)
        client.list_collections()
        _rename_seen_table(settings, "sigv4_seen", "sigv4_seen_away")
        with pytest.raises(ClientError) as refused:
            client.list_collections()
        error = refused.value.response
        assert error["Error"]["Code"] == "ThrottlingException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert "not run" in error["Error"]["Message"]
        _rename_seen_table(settings, "sigv4_seen_away", "sigv4_seen")
        client.list_collections()  # the check is back: requests run again
    # the refused request never ran: two lists on the record, not three
    assert _records(settings) == [("ListCollections", "ok"), ("ListCollections", "ok")]
