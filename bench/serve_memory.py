"""Peak memory of ``faceledger serve``, idle, with the default pack loaded.

Run: ``.venv/bin/python bench/serve_memory.py [--idle-seconds 3] [--breakdown]``.

Starts ``faceledger serve --port <free port>`` (the venv's console script) with a temporary
``FACELEDGER_DATA_DIR``, polls ``/healthz`` until ``loaded`` is true, waits idle, then reads
``VmHWM`` (peak resident set) and ``VmRSS`` from ``/proc/<pid>/status`` of the server and every
descendant process, sums them, stops the server (SIGINT, as Ctrl-C) and writes
``bench/results/serve_memory.json``. Goal: ≤ 400 MB (MB = 10^6 bytes; MiB also reported).

``--breakdown`` additionally runs the server's start-up steps one by one in a fresh
interpreter and records the resident set after each (imports, pack bytes, graph fixes, OpenCV
sessions), to show where the memory goes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "serve_memory.json"
BIN = Path(sys.executable).parent
GOAL_MB = 400.0
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_kib(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS / VmPeak / VmSize (kB) of one process."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "VmPeak", "VmSize", "RssAnon", "RssFile", "Threads"):
            out[key] = int(value.split()[0])
    return out


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child in children.get(current, []):
            out.append(child)
            todo.append(child)
    return out


def healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def measure_serve(idle_s: float) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="serve_memory_") as data_dir:
        env = {
            **os.environ,
            "FACELEDGER_DATA_DIR": data_dir,
            "FACELEDGER_LOG_LEVEL": "WARNING",
            "FACELEDGER_LEDGER_KEY_FILE": data_dir + "-ledger.key",
        }
        cmd = [str(BIN / "faceledger"), "serve", "--port", str(port)]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            health = None
            while time.perf_counter() - started < START_TIMEOUT_S:
                if proc.poll() is not None:
                    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    raise SystemExit(f"server exited with {proc.returncode}:\n{output}")
                health = healthz(port)
                if health and health.get("loaded"):
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(f"/healthz did not report loaded within {START_TIMEOUT_S} s")
            ready_s = time.perf_counter() - started
            time.sleep(idle_s)
            pids = [proc.pid, *descendants(proc.pid)]
            per_process = {str(pid): status_kib(pid) for pid in pids}
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    hwm_kib = sum(p["VmHWM"] for p in per_process.values())
    rss_kib = sum(p["VmRSS"] for p in per_process.values())
    return {
        "command": " ".join(["faceledger", "serve", "--port", str(port)]),
        "healthz": health,
        "seconds_to_loaded": round(ready_s, 2),
        "idle_seconds": idle_s,
        "processes": len(pids),
        "per_process_kib": per_process,
        "vm_hwm_mb": round(hwm_kib * 1024 / 1e6, 1),
        "vm_hwm_mib": round(hwm_kib / 1024, 1),
        "vm_rss_mb": round(rss_kib * 1024 / 1e6, 1),
        "vm_rss_mib": round(rss_kib / 1024, 1),
        "goal_mb": GOAL_MB,
        "ok": hwm_kib * 1024 / 1e6 <= GOAL_MB,
    }


# Each step runs in the same fresh interpreter, in order; RSS/HWM are read after each.
_BREAKDOWN = r"""
import json, sys, gc
def mem():
    d = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            d[k] = int(v.split()[0]) // 1024
    return d
steps = []
def step(name):
    gc.collect()
    steps.append({"step": name, **mem(), "modules": len(sys.modules)})
step("python started")
import numpy
step("import numpy")
import cv2
step("import cv2")
import faceledger.cli.main
step("import faceledger.cli.main (typer, pydantic)")
from faceledger.config import Settings
from faceledger.services.faces import FaceService
step("import faceledger.services.faces")
import uvicorn
from faceledger.api.app import create_app
step("import uvicorn + faceledger.api.app (fastapi)")
settings = Settings()
service = FaceService(settings)
files = service.registry.load(settings.default_pack)
step("pack bytes read + SHA-256 verified")
from faceledger.inference.sessions import apply_graph_fixes
fixed = apply_graph_fixes(files.embedder_bytes, files.manifest.embedder.graph_fixes)
step("SFace graph fix (imports onnx, parses + re-serialises the graph)")
del fixed, files
step("graph-fix copies released")
service.load()
step("FaceService.load() (YuNet + SFace OpenCV sessions)")
from faceledger.inference.imaging import decode_image
import numpy as np
ok, jpg = cv2.imencode(".jpg", np.full((480, 640, 3), 128, np.uint8))
service.engine.analyse(decode_image(jpg.tobytes()))
step("first analyse() (no face: detector only)")
heavy = ("onnx", "onnxruntime", "matplotlib", "PIL", "scipy", "rich")
roots = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy})
print(json.dumps({"steps": steps, "heavy_modules_loaded": roots}))
"""


def breakdown() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="serve_memory_") as data_dir:
        env = {
            **os.environ,
            "FACELEDGER_DATA_DIR": data_dir,
            "FACELEDGER_LEDGER_KEY_FILE": data_dir + "-ledger.key",
        }
        out = subprocess.run(
            [sys.executable, "-c", _BREAKDOWN], env=env, capture_output=True, text=True, check=True
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--breakdown", action="store_true", help="also measure step by step")
    args = parser.parse_args()
    report: dict[str, Any] = {"load_before": list(os.getloadavg())}
    report["serve"] = measure_serve(args.idle_seconds)
    if args.breakdown:
        report["breakdown"] = breakdown()
    report["load_after"] = list(os.getloadavg())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")

    s = report["serve"]
    print(
        f"faceledger serve, idle {s['idle_seconds']:.0f} s after /healthz loaded "
        f"({s['seconds_to_loaded']:.1f} s to load), {s['processes']} process(es):"
    )
    print(f"  peak RSS (VmHWM) {s['vm_hwm_mb']:.1f} MB ({s['vm_hwm_mib']:.1f} MiB)")
    print(f"  current RSS      {s['vm_rss_mb']:.1f} MB ({s['vm_rss_mib']:.1f} MiB)")
    print(f"  goal <= {GOAL_MB:.0f} MB: {'OK' if s['ok'] else 'MISSED'}")
    if "breakdown" in report:
        print("\nStart-up steps in one fresh interpreter (MiB after each step):")
        print(f"  {'step':<66} {'RSS':>6} {'peak':>6}")
        for st in report["breakdown"]["steps"]:
            print(f"  {st['step']:<66} {st['VmRSS']:>6} {st['VmHWM']:>6}")
        heavy = ", ".join(report["breakdown"]["heavy_modules_loaded"]) or "none"
        print(f"  heavy packages imported by the end: {heavy}")
    print(f"written {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
