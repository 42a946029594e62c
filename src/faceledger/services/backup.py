"""``faceledger backup DEST`` and ``faceledger restore SRC`` for the embedded (SQLite) backend.

**Backup, online.** A server may keep serving, enrolling and appending while it runs; nothing
is locked for longer than one SQLite read transaction. In order:

1. the index snapshots (``indexes/``): only caches, copied first so that each is older than
   the store copy (a loaded snapshot replays the store's change log forward; one being
   rewritten at that moment is skipped and rebuilt from the store on first use);
2. the ledger head, then the store (``faceledger.sqlite3``) with SQLite's online backup API
   (one read transaction: a consistent snapshot, writers go on in WAL mode);
3. the ledger (``ledger.sqlite3``), the same way. Copied *after* the store, so every change in
   the store copy has its intent record in the ledger copy ("no change without a record");
   records after ``ledger_seq_before_store`` may describe changes the store copy lacks, which
   the restore record says;
4. ``token.key`` and the stream event logs (``streams/*.jsonl``);
5. ``manifest.json`` last (SHA-256 of every file, the ledger head and key id).

The ledger key is never copied: it lives outside the data folder and must be backed up on its
own (the manifest names the file and the key id).

**Restore** (the server stopped): check every digest, check the key is present, refuse to
replace a newer ledger, and refuse when the key folder's tip or witness names records the
backup lacks (an older copy of the ledger looks exactly like a truncation) unless the operator
passes ``accept_older_ledger``: then the superseded tip and witness are kept beside the key as
``*.superseded-<time>`` and the restore record says which records were given up. Every restore
appends a ``RestoreBackup`` record and a signed checkpoint, then verifies the whole ledger.
PostgreSQL installations use ``pg_backup`` (``pg_dump``) instead.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faceledger import __version__
from faceledger.audit.core import ChainLedger
from faceledger.audit.keyring import Keyring
from faceledger.audit.ledger import LEDGER_FILENAME, Ledger
from faceledger.audit.signing import (
    read_tip,
    read_witness,
    resolve_key_file,
    tip_path,
    witness_path,
)
from faceledger.domain.audit import AuditEvent
from faceledger.domain.errors import LedgerError
from faceledger.services.backup_manifest import (
    MANIFEST_NAME,
    BackupError,
    BackupFile,
    Manifest,
    describe,
    fsync_dir,
)
from faceledger.store.factory import SQLITE_FILE

if TYPE_CHECKING:
    from faceledger.audit.verify import VerifyReport
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller

FORMAT_NOTE = "faceledger-backup/1"
KEY_NOTE = (
    "The ledger key is NOT in this backup. Restore needs the key file named in key_file (its id "
    "is ledger_key_id) from your separate key backup, at FACELEDGER_LEDGER_KEY_FILE."
)
_SNAPSHOT_TRIES = 3
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

Say = Callable[[str], None]


@dataclass(frozen=True)
class LedgerFacts:
    ledger_id: str
    seq: int
    digest: str
    key_id: str  # hex id of the key that MAC'd the newest MAC'd record ("" if none)


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    superseded: tuple[str, ...]  # tip / witness files moved aside (accept_older_ledger)
    restore_seq: int  # the RestoreBackup record
    report: VerifyReport


def _quiet(_: str) -> None:
    return None


# -- SQLite helpers ----------------------------------------------------------------------------
def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy the database ``source`` to a new file ``target`` with SQLite's online backup API:
    one read transaction, so the copy is one consistent state even while others write."""
    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    with closing(sqlite3.connect(source, timeout=60)) as src:
        src.execute("PRAGMA query_only=1")
        with closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)  # all pages in one step
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    with open(tmp, "rb+") as out:
        os.fsync(out.fileno())
    os.replace(tmp, target)


def ledger_facts(path: Path) -> LedgerFacts | None:
    """Id and head of the SQLite ledger at ``path`` (None if it is absent or was never
    initialised)."""
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(path, timeout=60)) as db:
            db.execute("PRAGMA query_only=1")
            meta = db.execute("SELECT ledger_id FROM meta WHERE id = 1").fetchone()
            if meta is None:
                return None
            head = db.execute(
                "SELECT seq, digest FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            mac = db.execute(
                "SELECT mac FROM records WHERE mac IS NOT NULL ORDER BY seq DESC LIMIT 1"
            ).fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the ledger {path}: {exc}") from None
    return LedgerFacts(
        ledger_id=str(meta[0]),
        seq=int(head[0]) if head else 0,
        digest=bytes(head[1]).hex() if head else bytes(32).hex(),
        key_id=bytes(mac[0])[:4].hex() if mac and mac[0] else "",
    )


def _digest_at(path: Path, seq: int) -> str | None:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT digest FROM records WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0]).hex() if row else None


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


def take_backup(settings: Settings, dest: Path, operator: Caller, *, say: Say = _quiet) -> Manifest:
    """Copy the installation's data folder to the new folder ``dest`` while it may be serving
    (see the module docstring), then append a ``CreateBackup`` record naming it (a backup
    holds every face template: who took one, where to, is the ledger's business). Returns
    the manifest written there."""
    if settings.database_url:
        from faceledger.services.pg_backup import take_pg_backup

        manifest = take_pg_backup(settings, dest, say=say)
    else:
        manifest = _take_sqlite_backup(settings, Path(dest), say)
    record_backup(settings, operator, manifest, Path(dest))
    return manifest


def record_backup(settings: Settings, operator: Caller, manifest: Manifest, dest: Path) -> None:
    """The ``CreateBackup`` record (after the copy: the backup ends before it)."""
    result = {
        "destination": str(dest.resolve()),
        "backend": manifest.backend,
        "ledger_seq": manifest.ledger_seq,
        "files": len(manifest.files),
        "size_bytes": manifest.size_bytes,
    }
    with Ledger.from_settings(settings) as ledger:
        ledger.append(AuditEvent.of(operator, "CreateBackup", result=result))


def _take_sqlite_backup(settings: Settings, dest: Path, say: Say) -> Manifest:
    data = Path(settings.data_dir)
    ledger_path, store_path = data / LEDGER_FILENAME, data / SQLITE_FILE
    if ledger_facts(ledger_path) is None:
        raise BackupError(f"no audit ledger at {ledger_path}: is FACELEDGER_DATA_DIR right?")
    key_file = resolve_key_file(settings.ledger_key_file, data)
    dest = Path(dest)
    prepare_destination(dest)
    created = time.time()
    files: list[str] = []

    say("index snapshots")
    copied, skipped = copy_snapshots(data / "indexes", dest / "indexes")
    files += copied
    before = ledger_facts(ledger_path)
    assert before is not None
    if store_path.is_file():
        say("store (SQLite online backup)")
        _sqlite_copy(store_path, dest / SQLITE_FILE)
        files.append(SQLITE_FILE)
    say("ledger (SQLite online backup)")
    _sqlite_copy(ledger_path, dest / LEDGER_FILENAME)
    files.append(LEDGER_FILENAME)
    facts = ledger_facts(dest / LEDGER_FILENAME)
    assert facts is not None
    for extra in [data / "token.key", *sorted((data / "streams").glob("*.jsonl"))]:
        if extra.is_file():
            relative = extra.relative_to(data).as_posix()
            (dest / relative).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(extra, dest / relative)
            files.append(relative)

    say("digests")
    manifest = Manifest(
        format=FORMAT_NOTE,
        created_at=created,
        finished_at=time.time(),
        faceledger_version=__version__,
        backend="sqlite",
        ledger_id=facts.ledger_id,
        ledger_seq=facts.seq,
        ledger_digest=facts.digest,
        ledger_seq_before_store=before.seq,
        ledger_key_id=facts.key_id,
        key_file=str(key_file.expanduser().resolve()),
        key_note=KEY_NOTE,
        files=tuple(describe(dest, f) for f in files),
        skipped=(*skipped, "models/, video-cache/, reports/ (re-creatable)"),
    )
    manifest.write(dest)
    return manifest


# -- restore -----------------------------------------------------------------------------------
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


def _refuse_newer(manifest: Manifest, existing: LedgerFacts | None, where: str) -> None:
    if existing is None or existing.seq == 0:
        return
    if existing.ledger_id != manifest.ledger_id:
        raise BackupError(
            f"{where} holds another ledger ({existing.ledger_id}, {existing.seq} records): "
            "restore refuses to replace it; move it away first (keep it as evidence)"
        )
    if existing.seq > manifest.ledger_seq:
        raise BackupError(
            f"the ledger at {where} is newer than the backup (record {existing.seq} > "
            f"{manifest.ledger_seq}): restore refuses to overwrite it"
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
    tmp = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(source, tmp)
    with open(tmp, "rb+") as out:
        os.fsync(out.fileno())
    for suffix in _SQLITE_SIDE_FILES:
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, target)


def _install_files(manifest: Manifest, src: Path, data: Path) -> None:
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    indexes = data / "indexes"
    if indexes.is_dir():  # snapshots of the state being replaced would be stale
        for old in [*indexes.glob("*.index"), *indexes.glob("*.json")]:
            old.unlink()
    for item in manifest.files:
        target = data / item.path
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        install_file(src / item.path, target)
    fsync_dir(data)


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


def restore_backup(
    settings: Settings,
    src: Path,
    operator: Caller,
    *,
    accept_older_ledger: bool = False,
    say: Say = _quiet,
) -> RestoreResult:
    """Restore the backup in ``src`` into ``settings`` (stop the server first); see the
    module docstring. ``BackupError`` before anything is changed when a check fails."""
    src = Path(src)
    manifest = Manifest.read(src)
    if manifest.backend == "postgresql" or settings.database_url:
        from faceledger.services.pg_backup import restore_pg_backup

        return restore_pg_backup(
            settings, src, manifest, operator, accept_older_ledger=accept_older_ledger, say=say
        )
    say("checking digests")
    manifest.check_files(src)
    data = Path(settings.data_dir)
    key_file = resolve_key_file(settings.ledger_key_file, data)
    check_key(manifest, key_file)
    _refuse_newer(manifest, ledger_facts(data / LEDGER_FILENAME), str(data / LEDGER_FILENAME))
    backup_ledger = src / LEDGER_FILENAME
    ahead = key_folder_ahead(manifest, key_file, lambda seq: _digest_at(backup_ledger, seq))
    if ahead and not accept_older_ledger:
        names = "; ".join(f"{p} names record {s}" for p, s in ahead)
        raise BackupError(
            f"the backup's ledger ends at record {manifest.ledger_seq}, but {names}: restoring "
            "it gives up the newer records, which verification would report as a truncation. "
            "If that is what you mean (the newer ledger is lost), run restore again with "
            "--accept-older-ledger: the tip and witness are kept aside and the ledger records "
            "that you did"
        )
    now = time.time()
    superseded = move_aside([p for p, _ in ahead], now)
    say("installing files")
    _install_files(manifest, src, data)
    say("recording the restore")
    ledger = Ledger.from_settings(settings)
    try:
        seq = record_restore(ledger, operator, manifest, src, ahead, superseded)
        say("verifying the ledger")
        report = ledger.verify()
    finally:
        ledger.close()
    return RestoreResult(manifest, superseded, seq, report)


__all__ = [
    "MANIFEST_NAME",
    "BackupError",
    "BackupFile",
    "LedgerFacts",
    "Manifest",
    "RestoreResult",
    "restore_backup",
    "take_backup",
]
