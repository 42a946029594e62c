"""Running it as a service: what /metrics costs a search, and what an online backup costs.

Run: ``.venv/bin/python bench/operations.py [--faces 100000] [--rounds 150] [--skip-backup]``.

**metrics**: three ``faceledger serve`` processes with the same collection (1,000 synthetic
faces plus a few LFW faces): ``FACELEDGER_METRICS=off``, ``key``, and ``off`` again (an A/A
control showing how far two identical servers differ on this machine). The same LFW probe is
searched through the native API on each in turn (order rotated every round), so all see the
same machine load; the medians are compared. A scrape of ``/metrics`` every ten rounds keeps
its collectors busy too.

**backup**: a data folder with ``--faces`` synthetic faces (random unit vectors; the backup
copies bytes, their distribution does not matter) and one ledger record per face, served by
``faceledger serve``; search latency is measured for ``--baseline-seconds`` before, then
``faceledger backup DEST`` runs in another process while the same searches go on. Reported:
backup duration, size, search p50/p99 before and during.

Writes ``bench/results/operations.json``. Load average is recorded next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, require_lfw, write_result

BIN = Path(sys.executable).parent
METRICS_KEY = "bench-metrics-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(data: Path, key_file: Path, faces: int, photos: list[Path]) -> tuple[str, str]:
    """A collection "c" with ``faces`` synthetic faces and one ledger record each, plus the
    LFW ``photos`` enrolled for real; returns an admin key ``(id, secret)``."""
    from faceledger.audit import Ledger
    from faceledger.config import Settings
    from faceledger.domain.audit import AuditEvent
    from faceledger.domain.collections import BoundingBox
    from faceledger.services.gateway import Gateway, local_operator
    from faceledger.services.keys import KeyService
    from faceledger.store.sqlite.faces import NewFace, SQLiteStore

    settings = Settings(data_dir=data, ledger_key_file=key_file)
    gate = Gateway(settings)
    operator = local_operator()
    try:
        gate.create_collection(operator, "c")
        for photo in photos:
            gate.index_faces(operator, "c", photo.read_bytes(), max_faces=1)
    finally:
        gate.close()
    store = SQLiteStore(data / "faceledger.sqlite3")
    rng = np.random.default_rng(0)
    box = BoundingBox(0.1, 0.1, 0.5, 0.5)
    with Ledger.from_settings(settings) as ledger:
        for start in range(0, faces, 2000):
            n = min(2000, faces - start)
            vecs = rng.standard_normal((n, 128)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            rows = store.add_faces(
                "c",
                [
                    NewFace("0" * 64, f"synthetic-{start + i}", box, 99.0, v)
                    for i, v in enumerate(vecs)
                ],
            )
            ledger.append_many(
                AuditEvent.of(
                    operator, "IndexFaces", collection_id="c", result={"indexed": [r.face.face_id]}
                )
                for r in rows
            )
    keys = KeyService(settings)
    try:
        record, secret = keys.create("bench", ["admin", "enrol", "search"])
    finally:
        keys.close()
    return record.key_id, secret


@contextmanager
def serve(data: Path, key_file: Path, **env: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "faceledger"), "serve"],
        env={
            **os.environ,
            "FACELEDGER_DATA_DIR": str(data),
            "FACELEDGER_LEDGER_KEY_FILE": str(key_file),
            "FACELEDGER_PORT": str(port),
            "FACELEDGER_LOG_LEVEL": "WARNING",
            "FACELEDGER_DEFAULT_THRESHOLD_FLOOR": "80",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("server did not become ready")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def search_once(client: httpx.Client, probe: bytes) -> float:
    started = time.perf_counter()
    answer = client.post(
        "/v1/collections/c/search", files={"image": ("p.jpg", probe, "image/jpeg")}
    )
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    return elapsed * 1000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def metrics_section(tmp: Path, photos: list[Path], rounds: int) -> dict[str, Any]:
    """Three servers: metrics off, on, and off again (an A/A control: how far two identical
    servers differ on this machine); each round searches all three in a rotated order."""
    key_file = tmp / "keys" / "ledger.key"
    names = ("off", "on", "off_control")
    keys = {name: populate(tmp / name, key_file, 1000, photos[:4]) for name in names}
    probe = photos[0].read_bytes()
    envs = {
        "off": {"FACELEDGER_METRICS": "off"},
        "on": {"FACELEDGER_METRICS": "key", "FACELEDGER_METRICS_KEY": METRICS_KEY},
        "off_control": {"FACELEDGER_METRICS": "off"},
    }
    with (
        serve(tmp / "off", key_file, **envs["off"]) as off_url,
        serve(tmp / "on", key_file, **envs["on"]) as on_url,
        serve(tmp / "off_control", key_file, **envs["off_control"]) as control_url,
    ):
        urls = {"off": off_url, "on": on_url, "off_control": control_url}
        clients = {
            name: httpx.Client(
                base_url=urls[name],
                timeout=60,
                headers={"Authorization": f"Bearer {keys[name][0]}:{keys[name][1]}"},
            )
            for name in names
        }
        for client in clients.values():
            for _ in range(5):
                search_once(client, probe)  # warm: index built, pages cached
        times: dict[str, list[float]] = {name: [] for name in names}
        load_before = os.getloadavg()
        for i in range(rounds):
            for j in range(len(names)):
                name = names[(i + j) % len(names)]
                times[name].append(search_once(clients[name], probe))
            if i % 10 == 0:
                scrape = clients["on"].get(
                    "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
                )
                assert scrape.status_code == 200
        for client in clients.values():
            client.close()
    medians = {name: statistics.median(times[name]) for name in names}
    return {
        "rounds": rounds,
        "median_ms": {name: round(v, 2) for name, v in medians.items()},
        "p90_ms": {name: round(pct(times[name], 90), 2) for name in names},
        "overhead_pct": round((medians["on"] / medians["off"] - 1) * 100, 2),
        "overhead_vs_both_off_pct": round(
            (medians["on"] / statistics.median(times["off"] + times["off_control"]) - 1) * 100,
            2,
        ),
        "control_difference_pct": round((medians["off_control"] / medians["off"] - 1) * 100, 2),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def backup_section(tmp: Path, photos: list[Path], faces: int, baseline_s: float) -> dict[str, Any]:
    key_file = tmp / "bkeys" / "ledger.key"
    data = tmp / "big"
    started = time.perf_counter()
    key = populate(data, key_file, faces, photos[:4])
    populate_s = time.perf_counter() - started
    probe = photos[0].read_bytes()
    with serve(data, key_file) as url:
        client = httpx.Client(
            base_url=url, timeout=120, headers={"Authorization": f"Bearer {key[0]}:{key[1]}"}
        )
        warm_started = time.perf_counter()
        search_once(client, probe)  # builds the collection's index
        warm_s = time.perf_counter() - warm_started
        before: list[float] = []
        deadline = time.monotonic() + baseline_s
        while time.monotonic() < deadline:
            before.append(search_once(client, probe))
        load_before = os.getloadavg()
        during: list[float] = []
        done = threading.Event()

        def searches() -> None:
            while not done.is_set():
                during.append(search_once(client, probe))

        thread = threading.Thread(target=searches)
        thread.start()
        backup_started = time.perf_counter()
        result = subprocess.run(
            [str(BIN / "faceledger"), "backup", str(tmp / "backup")],
            env={
                **os.environ,
                "FACELEDGER_DATA_DIR": str(data),
                "FACELEDGER_LEDGER_KEY_FILE": str(key_file),
            },
            capture_output=True,
            text=True,
            check=True,
        )
        wall_s = time.perf_counter() - backup_started
        done.set()
        thread.join()
        load_during = os.getloadavg()
        client.close()
    summary = json.loads(result.stdout)
    sizes = {
        name: (data / name).stat().st_size
        for name in ("faceledger.sqlite3", "ledger.sqlite3")
        if (data / name).exists()
    }
    return {
        "faces": faces,
        "ledger_records": summary["ledger_seq"],
        "populate_s": round(populate_s, 1),
        "first_search_s": round(warm_s, 2),
        "backup_wall_s": round(wall_s, 2),
        "backup_copy_s": summary["seconds"],
        "backup_size_bytes": summary["size_bytes"],
        "source_files_bytes": sizes,
        "search_before": {
            "n": len(before),
            "p50_ms": round(pct(before, 50), 2),
            "p99_ms": round(pct(before, 99), 2),
        },
        "search_during": {
            "n": len(during),
            "p50_ms": round(pct(during, 50), 2),
            "p99_ms": round(pct(during, 99), 2),
            "max_ms": round(max(during), 2),
        },
        "load_average_before": load_before,
        "load_average_during": load_during,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--skip-backup", action="store_true")
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    root = require_lfw()
    photos = [sorted(folder.glob("*.jpg"))[0] for folder in sorted(root.iterdir())[:8]]
    out: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="faceledger-ops-") as tmp:
        if not args.skip_metrics:
            out["metrics"] = metrics_section(Path(tmp), photos, args.rounds)
            print(json.dumps(out["metrics"], indent=2))
        if not args.skip_backup:
            out["backup"] = backup_section(Path(tmp), photos, args.faces, args.baseline_seconds)
            print(json.dumps(out["backup"], indent=2))
    write_result("operations.json", out)


if __name__ == "__main__":
    main()
