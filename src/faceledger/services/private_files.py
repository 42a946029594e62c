"""Private by default: what FaceLedger writes is readable by its own user only.

Face embeddings (in the store, its WAL, index snapshots), probe photos (the S3 object cache),
stream outputs, reports and the ledger key are personal or secret data. Two measures:

* :func:`restrict_umask` sets the process umask to 077 before anything is created, so every
  new file is 0600 and every new folder 0700 whichever code path creates it (SQLite's WAL and
  shared-memory files, faiss snapshots, temporary files). ``faceledger`` sets it for every
  command (``serve`` included) and the app's lifespan sets it again for servers started
  another way (``uvicorn --factory``).
* :func:`tighten` removes group and other permission bits from everything already under the
  data folder, and from the ledger key and its witness files, so that an installation made
  by an older release (folders 0755, index snapshots 0644) is private after its next start.
  It never follows symbolic links and does not touch what it does not own.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from faceledger.config import Settings

PRIVATE_UMASK = 0o077
OTHERS_BITS = 0o077  # group and other: read, write, execute

logger = logging.getLogger("faceledger.private")


def restrict_umask() -> int:
    """Set the process umask to 077 (new files 0600, new folders 0700); returns the old one."""
    return os.umask(PRIVATE_UMASK)


def _walk(root: Path) -> Iterator[Path]:
    """``root`` and everything below it, without following symbolic links."""
    yield root
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            yield Path(folder) / name


def tighten(paths: Iterable[Path], *, recursive_roots: Iterable[Path] = ()) -> list[Path]:
    """Remove group/other bits from ``paths`` and from everything under ``recursive_roots``.

    Missing paths and symbolic links are skipped; a path this user may not change is logged
    and skipped. Returns the paths whose mode was changed.
    """
    changed: list[Path] = []
    candidates: list[Path] = list(paths)
    for root in recursive_roots:
        if root.is_dir() and not root.is_symlink():
            candidates.extend(_walk(root))
    for path in candidates:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot check the mode of %s: %s", path, exc.strerror or exc)
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not mode & OTHERS_BITS:
            continue
        try:
            os.chmod(path, mode & ~OTHERS_BITS, follow_symlinks=False)
        except (NotImplementedError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            logger.warning("cannot make %s private (mode %o): %s", path, mode, reason)
            continue
        changed.append(path)
    return changed


def ledger_key_files(key_file: Path) -> list[Path]:
    """The ledger key, its witness files and their lock files (kept next to the key)."""
    folder = key_file.parent
    found = [key_file]
    if folder.is_dir():
        found.extend(sorted(folder.glob("ledger-*.witness.json*")))
    return found


def make_private(data_dir: Path, key_file: Path | None) -> list[Path]:
    """Set the umask, then tighten ``data_dir`` (recursively) and the ledger key files.

    Logs one line naming how many paths were readable by other users, when any were.
    """
    restrict_umask()
    keys = ledger_key_files(key_file) if key_file is not None else []
    changed = tighten(keys, recursive_roots=[data_dir])
    if changed:
        shown = ", ".join(str(p) for p in changed[:3]) + (", …" if len(changed) > 3 else "")
        logger.warning(
            "made %d files and folders private (0600/0700); other users could read them: %s",
            len(changed),
            shown,
        )
    return changed


def make_installation_private(settings: Settings) -> list[Path]:
    """:func:`make_private` for the data folder and ledger key that ``settings`` name."""
    from faceledger.audit.signing import resolve_key_file
    from faceledger.domain.errors import FaceLedgerError

    try:
        key_file: Path | None = resolve_key_file(settings.ledger_key_file, settings.data_dir)
    except FaceLedgerError:
        key_file = None  # a key inside the data folder: the ledger refuses it with a message
    return make_private(settings.data_dir, key_file)
