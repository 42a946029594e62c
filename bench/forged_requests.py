"""Forged and replayed Rekognition requests against a live server: how many are refused.

Starts ``faceledger`` (uvicorn, in this process) on a temporary data directory, makes an
officer key (search role) and a collection whose policy requires a purpose, then sends the
attack catalogue of ``tests/forgery.py`` (verbatim replays, injected purpose/case, unsigned
target and content type, swapped signed values, an expired signature) and counts the refusals.
Also times the replay cache's ``admit`` when full (the per-request cost it adds).

    python bench/forged_requests.py        # writes bench/results/forged_requests.json
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import machine, require_lfw, write_result
from helpers.forgery import run_attacks

CACHE_ENTRIES = 100_000


def _serve(settings: object) -> tuple[str, object, threading.Thread]:
    import uvicorn

    from faceledger.api.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return url, server, thread
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def _cache_admit_us() -> float:
    from faceledger.api.rekognition.replay import ReplayCache

    cache = ReplayCache(max_skew_seconds=300, max_entries=CACHE_ENTRIES)
    now = datetime.now(UTC)
    for i in range(CACHE_ENTRIES):
        cache.admit(f"{i:064x}", now - timedelta(seconds=i % 300), now)
    start = time.perf_counter()
    n = 50_000
    for i in range(n):  # each evicts the oldest (the cache is full)
        cache.admit(f"new-{i:060x}", now, now)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    root = require_lfw()
    probe = next(p for p in sorted(root.rglob("*.jpg"))).read_bytes()
    from faceledger.config import Settings
    from faceledger.services.keys import KeyService

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACELEDGER_LEDGER_KEY_FILE"] = str(Path(tmp) / "keys" / "ledger.key")
        settings = Settings(data_dir=Path(tmp) / "data")
        keys = KeyService(settings)
        admin, admin_secret = keys.create("bench-admin", ["admin"])
        officer, officer_secret = keys.create("bench-officer", ["search"])
        keys.close()
        url, server, thread = _serve(settings)
        try:
            bearer = {"Authorization": f"Bearer {admin.key_id}:{admin_secret}"}
            with httpx.Client(base_url=url, headers=bearer, timeout=60) as api:
                api.post("/v1/collections", json={"collection_id": "bench-forgery"})
                api.put(
                    "/v1/collections/bench-forgery/policy",
                    json={"require_purpose": True, "threshold_floor": 80},
                )
            outcomes = run_attacks(url, (officer.key_id, officer_secret), "bench-forgery", probe)
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
            thread.join(timeout=30)
    refused = sum(o.refused for o in outcomes)
    for o in outcomes:
        print(f"{'refused' if o.refused else 'ACCEPTED':8}  {o.code:28}  {o.attack}")
    print(f"refused {refused} of {len(outcomes)} forged or replayed requests")
    admit_us = _cache_admit_us()
    print(f"replay cache admit, full at {CACHE_ENTRIES:,} entries: {admit_us:.2f} µs")
    write_result(
        "forged_requests.json",
        {
            "attacks": len(outcomes),
            "refused": refused,
            "refused_pct": round(100.0 * refused / len(outcomes), 1),
            "outcomes": [
                {"attack": o.attack, "status": o.status, "code": o.code, "message": o.message}
                for o in outcomes
            ],
            "replay_cache_entries": CACHE_ENTRIES,
            "replay_cache_admit_us": round(admit_us, 2),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
