"""Shared helpers for bench scripts: data location, results files, machine facts."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CACHE = REPO / ".cache"


def data_dir() -> Path:
    return Path(os.environ.get("FACELEDGER_TEST_DATA", REPO.parent / "shared" / "data"))


def lfw_root() -> Path | None:
    root = data_dir() / "lfw-devtrain" / "images"
    return root if root.is_dir() else None


def require_lfw() -> Path:
    root = lfw_root()
    if root is None:
        print(f"skipped: LFW development split not found under {data_dir()}")
        sys.exit(0)
    return root


def lfw_photos(root: Path, people: int, min_photos: int = 1) -> list[list[Path]]:
    """The photos (in name order) of the first ``people`` people, in name order, under ``root``
    that have at least ``min_photos`` photos each."""
    chosen: list[list[Path]] = []
    for person in sorted(root.iterdir()):
        if len(chosen) == people:
            break
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= min_photos:
            chosen.append(photos)
    return chosen


def machine() -> dict[str, Any]:
    import cv2
    import numpy as np

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def scrub_paths(text: str) -> str:
    """Machine paths out of a result: the repo becomes relative, the shared data ``../shared``
    (results are committed; nothing outside the repo and ``../shared`` exists for users)."""
    text = text.replace(str(data_dir()), "../shared/data")
    text = text.replace(str(REPO.parent / "shared"), "../shared")
    return text.replace(str(REPO) + "/", "").replace(str(REPO), ".")


def scrub_file(path: Path) -> None:
    path.write_text(scrub_paths(path.read_text()))


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(scrub_paths(json.dumps(payload, indent=2, default=float)) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path
