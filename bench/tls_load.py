"""24 concurrent boto3 clients against ``faceledger serve --tls-cert/--tls-key``.

Run: ``.venv/bin/python bench/tls_load.py [--clients 24] [--seconds 180] [--faces 10000]``.

Makes a self-signed certificate (``cryptography``), a collection of ``--faces`` synthetic faces
plus the probe's person (as ``bench/rekognition_api.py`` does), starts ``faceledger serve``
with TLS as a subprocess, and runs ``--clients`` threads, each with its own boto3 client
verifying the certificate (``verify=<cert>``), calling ``SearchFacesByImage`` for ``--seconds``.
Counts answers by HTTP status (the goal: zero 5xx), reports p50/p99 latency, and samples the
server's resident set every 2 s (the goal: flat — the last third's median within 10 % of the
first third's). Writes ``bench/results/tls_load.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result
from faceledger.evaluation.certificates import self_signed_certificate
from rekognition_api import COLLECTION, REGION, build_collection, free_port, probe_jpeg, summarise


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def start_tls_server(data: Path, port: int, cert: Path, key: Path) -> subprocess.Popen[bytes]:
    import httpx

    env = dict(os.environ, FACELEDGER_DATA_DIR=str(data), FACELEDGER_PORT=str(port))
    env["FACELEDGER_LOG_LEVEL"] = "WARNING"
    env["FACELEDGER_LEDGER_KEY_FILE"] = str(data.parent / "keys" / "ledger.key")
    env["FACELEDGER_DEFAULT_THRESHOLD_FLOOR"] = "80"
    env["FACELEDGER_DEFAULT_RATE_PER_SECOND"] = "0"  # 24 clients share one key
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("faceledger")), "serve", *tls],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    import ssl

    trust = ssl.create_default_context(cafile=str(cert))
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(
                f"server exited: {server.stderr.read().decode() if server.stderr else ''}"
            )
        try:
            if httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trust, timeout=2).json()[
                "loaded"
            ]:
                return server
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not start within 120 s")


def run_load(
    url: str, cert: Path, key: tuple[str, str], probe: bytes, clients: int, seconds: float, pid: int
) -> dict[str, Any]:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker() -> None:
        rek = boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            verify=str(cert),
            config=Config(retries={"max_attempts": 1}, read_timeout=300),
        )
        barrier.wait()
        mine: list[float] = []
        counts: Counter[int] = Counter()
        while not stop.is_set():
            t = time.perf_counter()
            try:
                rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})
                counts[200] += 1
                mine.append((time.perf_counter() - t) * 1000)
            except ClientError as exc:
                counts[exc.response["ResponseMetadata"]["HTTPStatusCode"]] += 1
            except Exception as exc:  # transport failures: counted, not raised
                with lock:
                    failures[type(exc).__name__ + ": " + str(exc)[:120]] += 1
        with lock:
            latencies.extend(mine)
            statuses.update(counts)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    samples: list[tuple[float, float]] = []
    while time.perf_counter() - started < seconds:
        samples.append((round(time.perf_counter() - started, 1), rss_mb(pid)))
        time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    third = max(1, len(samples) // 3)
    first = statistics.median(r for _, r in samples[:third])
    last = statistics.median(r for _, r in samples[-third:])
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": sum(statuses.values()),
        "throughput_per_s": round(sum(statuses.values()) / elapsed, 2),
        "statuses": dict(statuses),
        "server_errors_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "transport_failures": dict(failures),
        "latency": summarise(latencies) if latencies else None,
        "rss_mb": {
            "first_third_median": round(first, 1),
            "last_third_median": round(last, 1),
            "change_pct": round(100 * (last - first) / first, 1),
            "samples": samples,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--faces", type=int, default=10_000)
    args = parser.parse_args()

    from faceledger.config import Settings
    from faceledger.services.keys import KeyService

    probe = probe_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert, key_file = self_signed_certificate(folder)
        data = folder / "data"
        settings = Settings(data_dir=data, ledger_key_file=folder / "keys" / "ledger.key")
        built = build_collection(settings, args.faces, probe)
        keys = KeyService(settings)
        access, secret = keys.create("tls-bench", ["search"])
        keys.close()
        port = free_port()
        server = start_tls_server(data, port, cert, key_file)
        try:
            result = run_load(
                f"https://127.0.0.1:{port}",
                cert,
                (access.key_id, secret),
                probe,
                args.clients,
                args.seconds,
                server.pid,
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
    latency = result["latency"] or {}
    print(
        f"{result['clients']} clients over TLS for {result['seconds']} s: "
        f"{result['requests']} requests ({result['throughput_per_s']}/s), "
        f"5xx {result['server_errors_5xx']}, statuses {result['statuses']}, "
        f"p50 {latency.get('median_ms')} ms, p99 {latency.get('p99_ms')} ms, "
        f"server RSS {result['rss_mb']['first_third_median']} → "
        f"{result['rss_mb']['last_third_median']} MB ({result['rss_mb']['change_pct']:+} %)"
    )
    write_result(
        "tls_load.json",
        {
            "command": " ".join(["python", "bench/tls_load.py", *sys.argv[1:]]),
            "machine": machine(),
            "collection": built,
            **result,
        },
    )


if __name__ == "__main__":
    main()
