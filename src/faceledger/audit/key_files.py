"""Secret key files outside the data folder: the one way to place, load and create them.

Two keys live this way: the ledger key (``audit/signing.py``) and the face-crop key
(``services/crop_keys.py``). Each is a file of random bytes, 0600 in a 0700 folder, that must
not be inside the data directory (whoever copies or rewrites the data folder must not get the
key with it). ``KeyFileKind`` holds what differs between them: size, error class and wording.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from faceledger.domain.errors import FaceLedgerError


@dataclass(frozen=True)
class KeyFileKind:
    """One kind of key file, for its checks and messages.

    ``label``: ``"ledger key"`` (messages say "the ledger key <path> …"); ``env``: the setting
    that moves it; ``why_outside``: what a key inside the data folder would allow;
    ``size_note``: appended to the wrong-size message; ``created_label``: in the log line
    on creation; ``logger``: the logger's name (the module that owns the key).
    """

    label: str
    size_bytes: int
    error: type[FaceLedgerError]
    env: str
    why_outside: str
    created_label: str
    logger: str
    size_note: str = ""


def outside_data_dir(path: Path, data_dir: Path, kind: KeyFileKind) -> Path:
    """``path``, refused (``kind.error``) when it is inside ``data_dir`` or is it."""
    resolved, data = path.resolve(), Path(data_dir).expanduser().resolve()
    if resolved == data or resolved.is_relative_to(data):
        raise kind.error(
            f"the {kind.label} file {path} is inside the data directory {data_dir}: keep it "
            f"elsewhere ({kind.env}), or {kind.why_outside}"
        )
    return path


def load_key_file(path: Path, kind: KeyFileKind) -> bytes | None:
    """The key in ``path``, or None when the file does not exist (a warning when others may
    read it; ``kind.error`` when it cannot be read or has the wrong size)."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise kind.error(f"cannot read the {kind.label} {path}: {exc.strerror or exc}") from None
    if len(key) != kind.size_bytes:
        raise kind.error(
            f"the {kind.label} {path} is not {kind.size_bytes} bytes long ({len(key)})"
            f"{kind.size_note}"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logging.getLogger(kind.logger).warning(
            "the %s %s is mode %o; restrict it to 0600", kind.label, path, mode
        )
    return key


def load_or_create_key_file(path: Path, kind: KeyFileKind) -> bytes:
    """The key in ``path``, created (random, 0600, folder 0700) if absent. Creation never
    overwrites: a complete temporary file is hard-linked into place, so two processes that
    start at once end up with the same key."""
    key = load_key_file(path, kind)
    if key is not None:
        return key
    try:
        create_key_file(path, kind.size_bytes)
    except OSError as exc:
        raise kind.error(f"cannot create the {kind.label} {path}: {exc.strerror or exc}") from None
    key = load_key_file(path, kind)
    if key is None:  # pragma: no cover - removed between link and read
        raise kind.error(f"the {kind.label} {path} vanished while it was being created")
    logging.getLogger(kind.logger).info("created the %s %s", kind.created_label, path)
    return key


def create_key_file(path: Path, size: int) -> None:
    """Create ``path`` with ``size`` random bytes (0600, folder 0700) unless it exists. Atomic
    and never overwriting: a complete temporary file is hard-linked into place, so two
    processes that start at once end up with the same key. ``OSError`` on failure."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race: use its key
    finally:
        tmp.unlink()
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """fsync ``folder``: a file just renamed or linked into it stays after a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
