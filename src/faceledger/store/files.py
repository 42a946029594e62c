"""The stores' private files: the SQLite store and the SQLite ledger are created 0600 in a 0700
folder before SQLite opens them (it would create them with the process's umask)."""

from __future__ import annotations

import os
from pathlib import Path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (folder 0700) unless it exists: an empty file is a
    valid, empty SQLite database, so SQLite then adopts it and its mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
