"""Decode cost of worst-case images under the limits, alone and four at once.

Run: ``.venv/bin/python bench/decode_cost.py``.

Builds, under the 5 MiB upload limit, the costliest images of each kind the decode budget
still admits (``Settings.max_decode_bytes``, 128 MiB of samples), plus the 16-bit RGBA bomb
of issue 17 (39.6 Mpx, ~0.3 MB) that it refuses. Each scenario runs in a fresh interpreter
with the default pack loaded (a server's baseline) and decodes through ``FaceService.image``
(the path every request takes): each image alone (seconds per decode), then four copies of it
at once from four threads, reading the process's peak resident set (``VmHWM``). The same is
run with the budget and the one-slot gate off ("before"). Writes
``bench/results/decode_cost.json``. Goals: no decode above 1 s; peak RSS ≤ 800 MB (MB = 10^6
bytes) under four concurrent worst-case images. Each decode's CPU time (its thread's) is
reported next to its wall time, which on a shared machine includes waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from _common import machine, write_result

MAX_UPLOAD_BYTES = 5_242_880


def _texture(
    h: int, w: int, channels: int, dtype: type, noise_share: float = 0.02, seed: int = 1
) -> np.ndarray:
    """A smooth gradient with a little noise: compresses under 5 MiB, decodes at full cost."""
    rng = np.random.default_rng(seed)
    top = 65535 if dtype is np.uint16 else 255
    ramp = np.linspace(0, top, w, dtype=np.float64)[None, :, None]
    rows = np.linspace(0, 1, h, dtype=np.float64)[:, None, None]
    base = (ramp * (0.5 + 0.5 * rows)).astype(np.float64)
    if dtype is np.uint16:
        base = np.floor(base / 257) * 257  # 16-bit samples that still compress under 5 MiB
    noise = (rng.random(size=(h, w, 1)) < noise_share) * (top // 255) * 24
    img = np.clip(base + noise, 0, top).astype(dtype)
    return np.repeat(img, channels, axis=2)


def build_images(folder: Path) -> dict[str, Path]:
    """The worst-case images, written to ``folder``; name → path."""
    images: dict[str, tuple[np.ndarray, str, list[int]]] = {
        # 40 Mpx (the pixel limit) of 8-bit RGB: 120 MB of samples, the most admitted
        "png8_rgb_40mpx": (_texture(5000, 8000, 3, np.uint8), ".png", []),
        "jpeg_rgb_40mpx": (
            _texture(5000, 8000, 3, np.uint8, noise_share=0.05),
            ".jpg",
            [cv2.IMWRITE_JPEG_QUALITY, 80],
        ),
        # 16-bit RGB just under the budget: 6 bytes/px → 22 Mpx
        "png16_rgb_22mpx": (_texture(4096, 5440, 3, np.uint16), ".png", []),
        # progressive JPEG just under: 9 bytes/px → 14.9 Mpx
        "jpeg_progressive_14mpx": (
            _texture(3300, 4500, 3, np.uint8, noise_share=0.2),
            ".jpg",
            [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
        ),
        # issue 17's bomb: 39.6 Mpx of 16-bit RGBA (317 MB of samples): refused
        "png16_rgba_39.6mpx_bomb": (
            np.zeros((5440, 7280, 4), np.uint16),
            ".png",
            [cv2.IMWRITE_PNG_COMPRESSION, 9],
        ),
    }
    paths = {}
    for name, (pixels, ext, params) in images.items():
        ok, buf = cv2.imencode(ext, pixels, params)
        assert ok, name
        data = buf.tobytes()
        assert len(data) <= MAX_UPLOAD_BYTES, (name, len(data))
        path = folder / f"{name}{ext}"
        path.write_bytes(data)
        paths[name] = path
    return paths


WORKER = r"""
import json, sys, threading, time
from pathlib import Path
from faceledger.config import Settings
from faceledger.domain.errors import FaceLedgerError
from faceledger.services.faces import FaceService

path, mode = Path(sys.argv[1]), sys.argv[2]
limits = {} if mode == "after" else {"max_decode_bytes": 10**13, "large_decode_slots": 64}
service = FaceService(Settings(data_dir=sys.argv[3], **limits))
service.load()
data = path.read_bytes()

def hwm_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024 / 1e6

def decode():
    t, cpu = time.perf_counter(), time.thread_time()
    try:
        service.image(data)
        outcome = "decoded"
    except FaceLedgerError as exc:
        outcome = exc.code
    return time.perf_counter() - t, outcome, time.thread_time() - cpu

baseline = hwm_mb()
alone_s, outcome, alone_cpu_s = decode()
results = [None] * 4
def run(i):
    results[i] = decode()
threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"outcome": outcome, "alone_s": alone_s, "alone_cpu_s": alone_cpu_s,
                  "baseline_hwm_mb": baseline, "concurrent_s": [r[0] for r in results],
                  "concurrent_cpu_s": [r[2] for r in results], "peak_hwm_mb": hwm_mb()}))
"""


def run(path: Path, mode: str, data_dir: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(path), mode, data_dir],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-before", action="store_true", help="skip the budget-off runs")
    args = parser.parse_args()
    rows: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_images(Path(tmp))
        for name, path in paths.items():
            row: dict[str, Any] = {"bytes": path.stat().st_size}
            for mode in ("after",) if args.no_before else ("before", "after"):
                row[mode] = run(path, mode, tmp)
                r = row[mode]
                print(
                    f"{name:26s} {mode:6s} {r['outcome']:24s} alone {r['alone_s']:.2f} s "
                    f"({r['alone_cpu_s']:.2f} s CPU), 4 at once: slowest request "
                    f"{max(r['concurrent_s']):.2f} s (decode CPU ≤ "
                    f"{max(r['concurrent_cpu_s']):.2f} s), "
                    f"peak RSS {r['peak_hwm_mb']:.0f} MB (baseline {r['baseline_hwm_mb']:.0f})",
                    flush=True,
                )
            rows[name] = row
    after = [r["after"] for r in rows.values()]
    summary = {
        "max_decode_alone_s": max(r["alone_s"] for r in after),
        "max_decode_cpu_s": max(max(r["concurrent_cpu_s"]) for r in after),
        "max_peak_rss_mb_4_concurrent": max(r["peak_hwm_mb"] for r in after),
    }
    print(json.dumps(summary))
    write_result(
        "decode_cost.json",
        {
            "command": "python bench/decode_cost.py",
            "machine": machine(),
            "wall_s": time.perf_counter() - started,
            "summary": summary,
            "images": rows,
        },
    )


if __name__ == "__main__":
    main()
