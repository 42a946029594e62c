"""The manifest of a backup folder: what it holds, each file's SHA-256, and the ledger head.

``manifest.json`` is written last, so a folder without one is an interrupted backup. It never
holds the ledger key: ``key_file`` and ``ledger_key_id`` say which key (and where it lived),
so that a restore can tell the operator what to bring back.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faceledger.audit.key_files import fsync_dir
from faceledger.domain.errors import FaceLedgerError

MANIFEST_NAME = "manifest.json"
FORMAT = "faceledger-backup/1"
_CHUNK_BYTES = 1 << 20


class BackupError(FaceLedgerError):
    """A backup could not be taken, or a restore refused; the message says why and what to do."""

    code = "BackupError"
    http_status = 400


@dataclass(frozen=True)
class BackupFile:
    """One file of the backup: its path inside the backup folder, size and SHA-256 (hex)."""

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds. ``ledger_seq`` / ``ledger_digest``: the newest record of the
    ledger copy; ``ledger_seq_before_store``: the ledger head just before the store was copied
    (every change in the store copy has its intent record at or before ``ledger_seq``);
    ``ledger_key_id``: the id (not the key) of the key that MAC'd the newest record."""

    format: str
    created_at: float
    finished_at: float
    faceledger_version: str
    backend: str  # "sqlite" or "postgresql"
    ledger_id: str
    ledger_seq: int
    ledger_digest: str
    ledger_seq_before_store: int
    ledger_key_id: str
    key_file: str
    key_note: str
    files: tuple[BackupFile, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["size_bytes"] = self.size_bytes
        return data

    def write(self, folder: Path) -> Path:
        """Write ``manifest.json`` into ``folder`` durably (temporary file, fsync, rename)."""
        path = folder / MANIFEST_NAME
        tmp = folder / f".{MANIFEST_NAME}.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
        return path

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the backup in ``folder``; ``BackupError`` if absent or unreadable."""
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise BackupError(
                f"{folder} holds no {MANIFEST_NAME}: not a backup, or an interrupted one"
            ) from None
        except (OSError, ValueError) as exc:
            raise BackupError(f"the manifest {path} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BackupError(f"{path} is not a {FORMAT} manifest")
        try:
            return cls(
                format=str(data["format"]),
                created_at=float(data["created_at"]),
                finished_at=float(data["finished_at"]),
                faceledger_version=str(data["faceledger_version"]),
                backend=str(data["backend"]),
                ledger_id=str(data["ledger_id"]),
                ledger_seq=int(data["ledger_seq"]),
                ledger_digest=str(data["ledger_digest"]),
                ledger_seq_before_store=int(data["ledger_seq_before_store"]),
                ledger_key_id=str(data["ledger_key_id"]),
                key_file=str(data["key_file"]),
                key_note=str(data["key_note"]),
                files=tuple(
                    BackupFile(str(f["path"]), int(f["size_bytes"]), str(f["sha256"]))
                    for f in data["files"]
                ),
                skipped=tuple(str(s) for s in data.get("skipped", ())),
                notes=tuple(str(s) for s in data.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"the manifest {path} is incomplete: {exc}") from None

    def check_files(self, folder: Path) -> None:
        """Every listed file is present with its size and SHA-256; ``BackupError`` naming the
        first one that is not (and any path that would leave the folder)."""
        root = folder.resolve()
        for item in self.files:
            path = (folder / item.path).resolve()
            if not path.is_relative_to(root):
                raise BackupError(f"the manifest lists {item.path!r}, outside the backup")
            try:
                size = path.stat().st_size
            except OSError:
                raise BackupError(
                    f"the backup lacks {item.path} (listed in the manifest)"
                ) from None
            if size != item.size_bytes or file_sha256(path) != item.sha256:
                raise BackupError(
                    f"{item.path} in the backup does not match its manifest digest "
                    "(damaged or altered): restore from another backup"
                )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe(folder: Path, relative: str) -> BackupFile:
    path = folder / relative
    return BackupFile(relative, path.stat().st_size, file_sha256(path))
