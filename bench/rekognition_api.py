"""The Rekognition API's overhead and concurrency, measured with boto3 against a real server.

One run, side by side on the same machine and data:

1. builds a collection of ``--faces`` (default 100,000) faces: synthetic identities (random
   unit centres with samples at a face model's same-person spread) plus the probe's person
   enrolled from a real photo;
2. times the same service call in this process — ``Gateway.search_faces_by_image``, the
   gateway the server calls (roles, policy, ledger record) — the in-process figure;
3. starts ``faceledger serve`` as a subprocess on a free loopback port and times boto3
   ``search_faces_by_image`` of the same 640×480 JPEG end to end (the ratio to step 2 is the
   HTTP + SigV4 + JSON + base64 overhead);
4. drives that server with 1 and then 8 concurrent boto3 clients (threads, one client each) for
   ``--seconds`` each: throughput, p50/p99 latency, errors, and CPU per request of the server
   process and of the clients (this process: they share the machine's cores);
5. counts, with a call profiler hooked into every thread of an in-process server, how many
   times each decode function runs per request (the upload must be decoded once).

Usage: ``.venv/bin/python bench/rekognition_api.py [--faces 100000] [--seconds 30]``.
Writes ``bench/results/rekognition_api.json``.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, write_result

COLLECTION = "bench-100k"
REGION = "us-east-1"
DIM = 128
SAME_PERSON_NOISE = 0.055  # per-dimension σ giving same-person cosines ≈ 0.6–0.7 at 128-d


def probe_jpeg() -> bytes:
    """A 640×480 JPEG of one of the shared full-size photos (one face)."""
    import cv2

    path = data_dir() / "photos" / "img11.jpg"
    if not path.is_file():
        print(f"skipped: {path} not found (set FACELEDGER_TEST_DATA)")
        sys.exit(0)
    pixels = cv2.imread(str(path))
    pixels = cv2.resize(pixels, (640, 480), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def build_collection(settings: Any, faces: int, probe: bytes) -> dict[str, Any]:
    """The collection: ``faces`` synthetic faces plus the probe's person from real photos."""
    from faceledger.domain.collections import BoundingBox
    from faceledger.services.collections import CollectionService
    from faceledger.store.sqlite.faces import NewFace

    service = CollectionService(settings)
    service.create_collection(COLLECTION)
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    per_identity = 4
    box = BoundingBox(0.3, 0.2, 0.4, 0.5)
    for start in range(0, faces, 10_000):
        n = min(10_000, faces - start)
        centres = rng.standard_normal((n // per_identity + 1, DIM)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        vecs = np.repeat(centres, per_identity, axis=0)[:n]
        vecs = vecs + rng.normal(0, SAME_PERSON_NOISE, vecs.shape).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        service.store.add_faces(
            COLLECTION,
            [
                NewFace(f"synthetic-{start + i}", f"synthetic-{start + i}", box, 99.0, v)
                for i, v in enumerate(vecs)
            ],
        )
    enrolled = service.index_faces(COLLECTION, mirror(probe), external_image_id="probe-person")
    service.indexes.get(COLLECTION)  # build the index once, as a restart would find it
    service.close()
    return {
        "faces": faces + len(enrolled.face_records),
        "seconds": round(time.perf_counter() - started, 1),
    }


def mirror(jpeg: bytes) -> bytes:
    """The probe flipped left-right: the same person, not the same image."""
    import cv2

    pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, buf = cv2.imencode(".jpg", cv2.flip(pixels, 1), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def in_process_timer(settings: Any, probe: bytes) -> tuple[Any, Any]:
    """A function timing one in-process gateway call (ms), and the gateway to close."""
    from faceledger.domain.audit import Caller
    from faceledger.domain.principals import Principal
    from faceledger.services.gateway import Gateway

    gate = Gateway(settings)
    caller = Caller(Principal("bench", ("search",), "BENCH"), source="cli", request_id="bench")
    result = gate.search_faces_by_image(caller, COLLECTION, probe)  # warm: models and index
    assert result.matches and result.matches[0].face.external_image_id == "probe-person"

    def once() -> float:
        t = time.perf_counter()
        gate.search_faces_by_image(caller, COLLECTION, probe)
        return (time.perf_counter() - t) * 1000

    return once, gate


def summarise(times_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(times_ms)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.90 * (len(ordered) - 1))], 2),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data: Path, port: int, inference_threads: int = 0) -> subprocess.Popen[bytes]:
    env = dict(os.environ, FACELEDGER_DATA_DIR=str(data), FACELEDGER_PORT=str(port))
    env["FACELEDGER_INFERENCE_THREADS"] = str(inference_threads)
    env["FACELEDGER_LOG_LEVEL"] = "WARNING"
    env["FACELEDGER_LEDGER_KEY_FILE"] = str(data.parent / "keys" / "ledger.key")
    env["FACELEDGER_DEFAULT_THRESHOLD_FLOOR"] = "80"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("faceledger")), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(
                f"server exited: {server.stderr.read().decode() if server.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not start within 120 s")


def client(url: str, key: tuple[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}, max_pool_connections=16),
    )


def boto3_timer(url: str, key: tuple[str, str], probe: bytes) -> Any:
    """A function timing one boto3 call end to end (ms)."""
    rek = client(url, key)
    found = rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})
    assert found["FaceMatches"][0]["Face"]["ExternalImageId"] == "probe-person"

    def once() -> float:
        t = time.perf_counter()
        rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})
        return (time.perf_counter() - t) * 1000

    return once


def side_by_side(in_process: Any, over_http: Any, runs: int) -> dict[str, Any]:
    """Alternate single in-process and boto3 calls so drifts in machine load hit both alike;
    also the median of the per-pair differences (the protocol's own cost)."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        a.append(in_process())
        b.append(over_http())
    diffs = sorted(y - x for x, y in zip(a, b, strict=True))
    return {
        "in_process": summarise(a),
        "boto3": summarise(b),
        "paired_difference_median_ms": round(statistics.median(diffs), 2),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    url: str,
    key: tuple[str, str],
    probe: bytes,
    clients: int,
    seconds: float,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """``clients`` threads, each with its own boto3 client, calling for ``seconds``.

    Also reports CPU per request: the server's (``server_pid``, when given) and this process's
    (the boto3 clients share the machine's cores with the server)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker() -> None:
        rek = client(url, key)
        rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})  # warm
        barrier.wait()
        mine: list[float] = []
        while not stop.is_set():
            t = time.perf_counter()
            try:
                rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})
            except Exception as exc:  # counted, not raised: the figure is "zero errors"
                with lock:
                    errors[type(exc).__name__ + ": " + str(exc)[:120]] += 1
                continue
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    client_cpu = time.process_time()
    server_cpu = cpu_seconds(server_pid) if server_pid is not None else 0.0
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    server_cpu = cpu_seconds(server_pid) - server_cpu if server_pid is not None else 0.0
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "throughput_per_s": round(len(latencies) / elapsed, 2),
        "cpu_seconds": {"server": server_cpu, "clients": client_cpu},
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "latency": summarise(latencies) if latencies else None,
        "latencies_ms": latencies,
    }


def alternating_load(
    url: str,
    key: tuple[str, str],
    probe: bytes,
    seconds: float,
    rounds: int = 3,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """1 client, then 8, repeated ``rounds`` times (``seconds`` split between the rounds), so
    that drifts in the machine's load hit both; figures aggregate the rounds."""
    phase = seconds / rounds
    runs: dict[int, list[dict[str, Any]]] = {1: [], 8: []}
    for _ in range(rounds):
        for clients in (1, 8):
            runs[clients].append(load(url, key, probe, clients, phase, server_pid))
    out: dict[str, Any] = {}
    for clients, parts in runs.items():
        latencies = [x for part in parts for x in part.pop("latencies_ms")]
        elapsed = sum(part["seconds"] for part in parts)
        errors: Counter[str] = Counter()
        for part in parts:
            errors.update(part["error_kinds"])
        cpu_ms = (
            {
                who: round(
                    1000 * sum(part["cpu_seconds"][who] for part in parts) / len(latencies), 2
                )
                for who in ("server", "clients")
            }
            if latencies
            else None
        )
        out[f"load_{clients}"] = {
            "clients": clients,
            "seconds": round(elapsed, 2),
            "requests": len(latencies),
            "throughput_per_s": round(len(latencies) / elapsed, 2),
            "cpu_ms_per_request": cpu_ms,
            "rounds_throughput_per_s": [part["throughput_per_s"] for part in parts],
            "errors": sum(errors.values()),
            "error_kinds": dict(errors),
            "latency": summarise(latencies) if latencies else None,
        }
    out["throughput_ratio_8_to_1"] = round(
        out["load_8"]["throughput_per_s"] / out["load_1"]["throughput_per_s"], 3
    )
    return out


class CallCounter:
    """A profiler (``sys.setprofile`` on every thread) counting calls of chosen functions."""

    def __init__(self, python: dict[str, Any], builtins: dict[str, Any]) -> None:
        self.codes = {func.__code__: name for name, func in python.items()}
        self.builtins = {id(func): name for name, func in builtins.items()}
        self.counts: Counter[str] = Counter()

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = self.codes.get(frame.f_code)
            if name:
                self.counts[name] += 1
        elif event == "c_call":
            name = self.builtins.get(id(arg))
            if name:
                self.counts[name] += 1


def profile_decodes(
    settings: Any, key: tuple[str, str], probe: bytes, requests: int
) -> dict[str, Any]:
    """Run the app in this process, profiled on every thread, and count decodes per request."""
    import binascii

    import cv2
    import uvicorn
    from PIL import Image as PILImage

    from faceledger.api.app import create_app
    from faceledger.inference import imaging

    counter = CallCounter(
        python={
            "imaging.decode_image": imaging.decode_image,
            "imaging._decode": imaging._decode,
            "PIL.Image.open": PILImage.open,
            "base64.b64decode": base64.b64decode,
        },
        builtins={"cv2.imdecode": cv2.imdecode, "binascii.a2b_base64": binascii.a2b_base64},
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.setprofile(counter)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.1)
    rek = client(url, key)
    rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})  # warm
    counter.counts.clear()
    for _ in range(requests):
        rek.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": probe})
    counts = dict(counter.counts)
    threading.setprofile(None)  # type: ignore[arg-type]
    server.should_exit = True
    thread.join(timeout=30)
    # The client (boto3) runs in this thread, which has no profiler: only server-side calls count.
    return {
        "requests": requests,
        "calls": counts,
        "per_request": {k: round(v / requests, 2) for k, v in counts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="per client count, over 3 alternating rounds"
    )
    parser.add_argument("--runs", type=int, default=120)
    args = parser.parse_args()

    from faceledger.config import Settings
    from faceledger.services.keys import KeyService

    probe = probe_jpeg()
    out: dict[str, Any] = {
        "command": "python bench/rekognition_api.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "probe": {"width_px": 640, "height_px": 480, "bytes": len(probe)},
    }
    with tempfile.TemporaryDirectory(prefix="faceledger-bench-") as tmp:
        data = Path(tmp) / "data"
        settings = Settings(
            data_dir=data,
            ledger_key_file=Path(tmp) / "keys" / "ledger.key",
            default_threshold_floor=80,
        )
        key_record, secret = KeyService(settings).create("bench", ["admin", "enrol", "search"])
        key = (key_record.key_id, secret)
        print(f"building a {args.faces:,}-face collection …", flush=True)
        out["collection"] = build_collection(settings, args.faces, probe)
        print(f"  {out['collection']}", flush=True)

        port = free_port()
        server = start_server(data, port)
        url = f"http://127.0.0.1:{port}"
        try:
            in_process, gate = in_process_timer(settings, probe)
            timed = side_by_side(in_process, boto3_timer(url, key, probe), args.runs)
            gate.close()
            gate.close_models()
            out["in_process"], out["boto3"] = timed["in_process"], timed["boto3"]
            out["paired_difference_median_ms"] = timed["paired_difference_median_ms"]
            print(f"in-process Gateway.search_faces_by_image: {out['in_process']}", flush=True)
            print(f"boto3 end to end: {out['boto3']}", flush=True)
            out["ratio_boto3_to_in_process_median"] = round(
                out["boto3"]["median_ms"] / out["in_process"]["median_ms"], 3
            )
            out.update(alternating_load(url, key, probe, args.seconds, server_pid=server.pid))
            print(f"1 client: {out['load_1']}", flush=True)
            print(f"8 clients: {out['load_8']}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
        # The same, with OpenCV fixed at one thread per inference (FACELEDGER_INFERENCE_THREADS=1)
        port = free_port()
        server = start_server(data, port, inference_threads=1)
        url = f"http://127.0.0.1:{port}"
        try:
            one = alternating_load(url, key, probe, args.seconds, server_pid=server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
        out["inference_threads_1"] = one
        print(f"inference_threads=1: {one}", flush=True)
        out["decode_profile"] = profile_decodes(settings, key, probe, 20)
        print(f"decode profile: {out['decode_profile']}", flush=True)
    out["machine"]["load_average_after"] = os.getloadavg()
    out["goals"] = {
        "boto3_median_over_in_process_at_most": 1.25,
        "throughput_8_over_1_at_least": 1.6,
        "errors": 0,
        "decodes_per_request": 1,
    }
    print(
        f"ratio boto3/in-process median {out['ratio_boto3_to_in_process_median']} (goal ≤ 1.25); "
        f"8/1 clients throughput {out['throughput_ratio_8_to_1']} (goal ≥ 1.6; "
        f"{out['inference_threads_1']['throughput_ratio_8_to_1']} with inference_threads=1); "
        f"errors {out['load_1']['errors'] + out['load_8']['errors']}"
    )
    write_result("rekognition_api.json", out)


if __name__ == "__main__":
    main()
