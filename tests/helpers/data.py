"""Where the read-only test models and data live (never in the repository).

``$FACELEDGER_SHARED`` (default ``../shared`` next to the repository) holds ``models/``;
``$FACELEDGER_TEST_DATA`` (default ``../shared/data``) holds the photos and LFW.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_PARENT = Path(__file__).resolve().parents[3]


def shared_root() -> Path:
    """``$FACELEDGER_SHARED`` or ``<repo>/../shared`` (may not exist)."""
    return Path(os.environ.get("FACELEDGER_SHARED", _REPO_PARENT / "shared"))


def data_root() -> Path:
    """``$FACELEDGER_TEST_DATA`` or ``shared_root()/data`` (may not exist)."""
    return Path(os.environ.get("FACELEDGER_TEST_DATA", shared_root() / "data"))


def lfw_people(data_dir: Path, min_images: int, count: int) -> dict[str, list[Path]]:
    """The first ``count`` LFW devtrain people (by name) with at least ``min_images`` photos."""
    root = data_dir / "lfw-devtrain" / "images"
    out: dict[str, list[Path]] = {}
    for folder in sorted(root.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= min_images:
            out[folder.name] = images
        if len(out) == count:
            break
    return out
