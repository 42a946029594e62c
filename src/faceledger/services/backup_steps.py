"""The steps a backup and a restore take on either backend (``backup`` for SQLite,
``pg_backup`` for PostgreSQL): the destination, the index snapshots and other files, the
manifest, and on restore the key and key-folder checks, installing files, and the
``RestoreBackup`` record followed by a full verification."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceledger import __version__
from faceledger.audit.core import ChainLedger
from faceledger.audit.keyring import Keyring
from faceledger.audit.ledger import Ledger
from faceledger.audit.signing import (
    read_tip,
    read_witness,
    resolve_key_file,
    tip_path,
    witness_path,
)
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError
from faceledger.services.backup_manifest import FORMAT, BackupError, Manifest, describe, fsync_dir

if TYPE_CHECKING:
    from faceledger.audit.verify import VerifyReport
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller

KEY_NOTE = (
    "The ledger key is NOT in this backup. Restore needs the key file named in key_file (its id "
    "is ledger_key_id) from your separate key backup, at FACELEDGER_LEDGER_KEY_FILE."
)
RECREATABLE = "models/, video-cache/, reports/ (re-creatable)"
_SNAPSHOT_TRIES = 3
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

Say = Callable[[str], None]


def quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class LedgerFacts:
    ledger_id: str
    seq: int
    digest: str
    key_id: str  # hex id of the key that MAC'd the newest MAC'd record ("" if none)


def read_ledger_facts(execute: Callable[[str], Any], schema: str = "") -> LedgerFacts | None:
    """Id and head of the ledger whose tables ``meta`` and ``records`` (in ``schema``, e.g.
    ``"ledger."``) ``execute(sql)`` queries (a sqlite3 or psycopg connection's ``execute``);
    None if it was never initialised."""
    meta = execute(f"SELECT ledger_id FROM {schema}meta WHERE id = 1").fetchone()
    if meta is None:
        return None
    head = execute(f"SELECT seq, digest FROM {schema}records ORDER BY seq DESC LIMIT 1").fetchone()
    mac = execute(
        f"SELECT mac FROM {schema}records WHERE mac IS NOT NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return LedgerFacts(
        ledger_id=str(meta[0]),
        seq=int(head[0]) if head else 0,
        digest=bytes(head[1]).hex() if head else bytes(32).hex(),
        key_id=bytes(mac[0])[:4].hex() if mac and mac[0] else "",
    )


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    superseded: tuple[str, ...]  # tip / witness files moved aside (accept_older_ledger)
    restore_seq: int  # the RestoreBackup record
    report: VerifyReport


# -- backup ------------------------------------------------------------------------------------
def prepare_destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder: choose a new destination")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest, 0o700)  # the backup holds face templates and access-key secrets


def copy_snapshots(source: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Copy each collection's index snapshot (``<id>.index`` + ``<id>.json``) unless it is
    rewritten while being copied (retried, then skipped). Returns (copied paths, skipped)."""
    copied: list[str] = []
    skipped: list[str] = []
    if not source.is_dir():
        return copied, skipped
    for meta in sorted(source.glob("*.json")):
        index = meta.with_suffix(".index")
        for _ in range(_SNAPSHOT_TRIES):
            try:
                before = (meta.read_bytes(), index.stat())
                dest.mkdir(mode=0o700, exist_ok=True)
                shutil.copyfile(index, dest / index.name)
                after = (meta.read_bytes(), index.stat())
            except FileNotFoundError:
                continue  # being replaced right now
            same = before[0] == after[0] and (
                (before[1].st_ino, before[1].st_mtime_ns, before[1].st_size)
                == (after[1].st_ino, after[1].st_mtime_ns, after[1].st_size)
            )
            if same:
                (dest / meta.name).write_bytes(before[0])
                copied += [f"indexes/{index.name}", f"indexes/{meta.name}"]
                break
        else:
            (dest / index.name).unlink(missing_ok=True)
            skipped.append(f"indexes/{meta.stem} (rewritten during the copy; rebuilt on use)")
    return copied, skipped


def copy_files(data: Path, dest: Path, paths: Iterable[Path]) -> list[str]:
    """Copy each existing file of ``paths`` (inside ``data``) to the same place under
    ``dest``; returns their paths relative to ``data``."""
    copied: list[str] = []
    for path in paths:
        if path.is_file():
            relative = path.relative_to(data).as_posix()
            (dest / relative).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(path, dest / relative)
            copied.append(relative)
    return copied


def write_manifest(
    dest: Path,
    *,
    backend: str,
    created_at: float,
    head: LedgerFacts,
    seq_before_store: int,
    key_file: Path,
    files: Sequence[str],
    skipped: Sequence[str],
    notes: tuple[str, ...] = (),
) -> Manifest:
    """The manifest of the backup in ``dest`` (digests of ``files``), written last."""
    manifest = Manifest(
        format=FORMAT,
        created_at=created_at,
        finished_at=time.time(),
        faceledger_version=__version__,
        backend=backend,
        ledger_id=head.ledger_id,
        ledger_seq=head.seq,
        ledger_digest=head.digest,
        ledger_seq_before_store=seq_before_store,
        ledger_key_id=head.key_id,
        key_file=str(key_file.expanduser().resolve()),
        key_note=KEY_NOTE,
        files=tuple(describe(dest, f) for f in files),
        skipped=(*skipped, RECREATABLE),
        notes=notes,
    )
    manifest.write(dest)
    return manifest


# -- restore -----------------------------------------------------------------------------------
def check_backup(settings: Settings, src: Path, manifest: Manifest, say: Say) -> tuple[Path, Path]:
    """Every file's digest, and the key the backup needs; returns (data folder, key file)."""
    say("checking digests")
    manifest.check_files(src)
    data = Path(settings.data_dir)
    key_file = resolve_key_file(settings.ledger_key_file, data)
    check_key(manifest, key_file)
    return data, key_file


def check_key(manifest: Manifest, key_file: Path) -> None:
    """The key that MAC'd the backup's newest records must be at ``key_file`` (or retired
    beside it); else ``BackupError`` saying where it must come from."""
    if not manifest.ledger_key_id:
        return  # a ledger from before per-record MACs, or empty
    try:
        keyring = Keyring.load(key_file)
    except LedgerError as exc:
        raise BackupError(exc.message) from None
    if keyring.signer(bytes.fromhex(manifest.ledger_key_id)) is None:
        raise BackupError(
            f"the ledger key with id {manifest.ledger_key_id} is not at {key_file} (nor retired "
            f"beside it). The backup does not contain the key: copy it from your key backup of "
            f"{manifest.key_file} to {key_file} (mode 0600), or point FACELEDGER_LEDGER_KEY_FILE "
            "at it"
        )


def key_folder_ahead(
    manifest: Manifest, key_file: Path, digest_at: Callable[[int], str | None] | None
) -> list[tuple[Path, int]]:
    """The tip and witness beside the key that name records the backup does not hold (or,
    when ``digest_at`` can look into the backup, holds differently): ``[(file, seq)]``."""
    ahead: list[tuple[Path, int]] = []
    tip_file = tip_path(key_file, manifest.ledger_id)
    witness_file = witness_path(key_file, manifest.ledger_id)
    try:
        tip, witness = read_tip(tip_file), read_witness(witness_file)
    except LedgerError as exc:
        raise BackupError(exc.message) from None
    for path, named in ((tip_file, tip), (witness_file, witness)):
        if named is None or named.ledger_id != manifest.ledger_id:
            continue
        forked = digest_at is not None and digest_at(named.seq) != named.digest
        if named.seq > manifest.ledger_seq or forked:
            ahead.append((path, named.seq))
    return ahead


def refuse_older_ledger(
    manifest: Manifest, ahead: list[tuple[Path, int]], *, accept_older_ledger: bool
) -> None:
    """Refuse to restore over a key folder that is ``ahead`` of the backup unless the operator
    accepts the older ledger (the caller then moves those files aside: ``move_aside``)."""
    if ahead and not accept_older_ledger:
        names = "; ".join(f"{p} names record {s}" for p, s in ahead)
        raise BackupError(
            f"the backup's ledger ends at record {manifest.ledger_seq}, but {names}: restoring "
            "it gives up the newer records, which verification would report as a truncation. "
            "If that is what you mean (the newer ledger is lost), run restore again with "
            "--accept-older-ledger: the tip and witness are kept aside and the ledger records "
            "that you did"
        )


def move_aside(paths: list[Path], when: float) -> tuple[str, ...]:
    """Rename each file to ``<name>.superseded-<UTC time>`` (kept as evidence)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    moved = []
    for path in paths:
        target = path.with_name(f"{path.name}.superseded-{stamp}")
        os.replace(path, target)
        moved.append(str(target))
    if paths:
        fsync_dir(paths[0].parent)
    return tuple(moved)


def install_file(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically, dropping any SQLite side files of the old one."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(source, tmp)
    with open(tmp, "rb+") as out:
        os.fsync(out.fileno())
    for suffix in _SQLITE_SIDE_FILES:
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, target)


def record_restore(
    ledger: ChainLedger,
    operator: Caller,
    manifest: Manifest,
    source: Path,
    ahead: list[tuple[Path, int]],
    superseded: tuple[str, ...],
) -> int:
    """Append the ``RestoreBackup`` record and a signed checkpoint; returns the record's seq."""
    result: dict[str, object] = {
        "backup": str(source),
        "backup_created_at": manifest.created_at,
        "backup_ledger_seq": manifest.ledger_seq,
        "backup_ledger_digest": manifest.ledger_digest,
        "ledger_seq_before_store": manifest.ledger_seq_before_store,
        "note": (
            f"the store was restored as of the backup; changes recorded after seq "
            f"{manifest.ledger_seq_before_store} may be missing from it"
        ),
        "accepted_older_ledger": bool(ahead),
    }
    if ahead:
        result["given_up"] = [{"file": str(p), "named_seq": s} for p, s in ahead]
        result["superseded"] = list(superseded)
    entry = ledger.append(AuditEvent.of(operator, "RestoreBackup", result=result))
    ledger.checkpoint()
    return entry.seq


def record_and_verify(
    settings: Settings,
    operator: Caller,
    manifest: Manifest,
    src: Path,
    ahead: list[tuple[Path, int]],
    superseded: tuple[str, ...],
    say: Say,
) -> RestoreResult:
    """The restore's last step: its record in the restored ledger, then a full verification."""
    say("recording the restore")
    ledger = Ledger.from_settings(settings)
    try:
        seq = record_restore(ledger, operator, manifest, src, ahead, superseded)
        say("verifying the ledger")
        report = ledger.verify()
    finally:
        ledger.close()
    return RestoreResult(manifest, superseded, seq, report)
