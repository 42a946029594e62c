"""Forged and replayed Rekognition requests are refused, and boto3 keeps working.

The attacks (``tests/forgery.py``) go to a real server over HTTP: a verbatim replay of a
boto3 request, an officer's refused search re-sent with a purpose injected, headers the
signature leaves out (target, content type, purpose, case), signed values swapped, an expired
signature. Every one must be refused before anything runs. Only the verbatim replay leaves a
record (its refusal, under the key that signed it); the forgeries leave none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from helpers.backends import BOTH_BACKENDS
from helpers.forgery import REFUSAL_CODES, boto3_client, captured, run_attacks


def _records(settings: Settings, principal: str) -> list[Any]:
    ledger = Ledger.from_settings(settings)
    try:
        return [e.event for e in ledger.entries(principal=principal)]
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def probe(data_dir: Path) -> bytes:
    root = data_dir / "lfw-devtrain" / "images"
    folder = next(p for p in sorted(root.iterdir()) if any(p.glob("*.jpg")))
    return sorted(folder.glob("*.jpg"))[0].read_bytes()


@BOTH_BACKENDS
def test_every_forged_or_replayed_request_is_refused(
    live_server: str,
    api: httpx.Client,
    make_key: Callable[[str, list[str]], tuple[str, str]],
    live_server_settings: Settings,
    probe: bytes,
) -> None:
    officer = make_key("forgery-officer", ["search"])
    assert api.post("/v1/collections", json={"collection_id": "forgery-1"}).status_code == 201
    policy = {"require_purpose": True, "threshold_floor": 80}
    assert api.put("/v1/collections/forgery-1/policy", json=policy).status_code == 200

    outcomes = run_attacks(live_server, officer, "forgery-1", probe)

    assert len(outcomes) >= 11
    not_refused = [o for o in outcomes if not o.refused]
    assert not_refused == [], not_refused
    assert all(o.status in (400, 403) for o in outcomes)
    # The replays are refused as replays, the unsigned headers as unsigned.
    why = {o.attack: o.message for o in outcomes}
    assert "already received" in why["replay: a boto3 request re-sent verbatim"]
    for unsigned in ("injected purpose (unsigned)", "injected case (unsigned)", "unsigned target"):
        assert "must be a 'SignedHeader'" in why[unsigned], why[unsigned]
    assert "expired" in why["expired signature"]
    # The two genuine requests are ledgered (the list, and the search refused for want of a
    # purpose), then the list's replay refused; nothing carries the injected purpose.
    records = _records(live_server_settings, "forgery-officer")
    assert [(r.operation, r.outcome) for r in records] == [
        ("ListCollections", "ok"),
        ("SearchFacesByImage", "AccessDeniedException"),
        ("ListCollections", "InvalidSignatureException"),
    ]
    assert all(r.purpose is None and r.case_reference is None for r in records)
    api.delete("/v1/collections/forgery-1")


def test_a_replay_names_the_cause(
    live_server: str, make_key: Callable[[str, list[str]], tuple[str, str]]
) -> None:
    client = boto3_client(live_server, make_key("forgery-replay", ["search"]))
    with captured(client) as wires:
        client.list_collections()
    first = wires[0].send()
    assert first.status_code == 400 and first.json()["__type"] in REFUSAL_CODES
    assert "already received" in first.json()["message"]


def test_boto3_repeating_a_call_at_once_is_not_a_replay(
    live_server: str, make_key: Callable[[str, list[str]], tuple[str, str]]
) -> None:
    """boto3 signs to the second with no signed nonce: identical calls in one second carry one
    signature and differ only in the invocation id botocore adds after signing."""
    client = boto3_client(live_server, make_key("forgery-repeat", ["search"]), purpose="check")
    with captured(client) as wires:
        for _ in range(5):
            client.list_collections()
    assert len(wires) == 5  # all answered (a refusal would have raised)
