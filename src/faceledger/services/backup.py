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
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from faceledger.audit.ledger import LEDGER_FILENAME, Ledger
from faceledger.audit.signing import resolve_key_file
from faceledger.domain.audit import AuditEvent
from faceledger.services.backup_manifest import (
    MANIFEST_NAME,
    BackupError,
    BackupFile,
    Manifest,
    fsync_dir,
)
from faceledger.services.backup_steps import (
    LedgerFacts,
    RestoreResult,
    Say,
    check_backup,
    copy_files,
    copy_snapshots,
    install_file,
    key_folder_ahead,
    move_aside,
    prepare_destination,
    quiet,
    read_ledger_facts,
    record_and_verify,
    refuse_older_ledger,
    write_manifest,
)
from faceledger.store.factory import SQLITE_FILE

if TYPE_CHECKING:
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller


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
            return read_ledger_facts(db.execute)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the ledger {path}: {exc}") from None


def _digest_at(path: Path, seq: int) -> str | None:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT digest FROM records WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0]).hex() if row else None


# -- backup ------------------------------------------------------------------------------------
def take_backup(settings: Settings, dest: Path, operator: Caller, *, say: Say = quiet) -> Manifest:
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
    files += copy_files(
        data, dest, [data / "token.key", *sorted((data / "streams").glob("*.jsonl"))]
    )

    say("digests")
    return write_manifest(
        dest,
        backend="sqlite",
        created_at=created,
        head=facts,
        seq_before_store=before.seq,
        key_file=key_file,
        files=files,
        skipped=skipped,
    )


# -- restore -----------------------------------------------------------------------------------
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


def _install_files(manifest: Manifest, src: Path, data: Path) -> None:
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    indexes = data / "indexes"
    if indexes.is_dir():  # snapshots of the state being replaced would be stale
        for old in [*indexes.glob("*.index"), *indexes.glob("*.json")]:
            old.unlink()
    for item in manifest.files:
        install_file(src / item.path, data / item.path)
    fsync_dir(data)


def restore_backup(
    settings: Settings,
    src: Path,
    operator: Caller,
    *,
    accept_older_ledger: bool = False,
    say: Say = quiet,
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
    data, key_file = check_backup(settings, src, manifest, say)
    _refuse_newer(manifest, ledger_facts(data / LEDGER_FILENAME), str(data / LEDGER_FILENAME))
    backup_ledger = src / LEDGER_FILENAME
    ahead = key_folder_ahead(manifest, key_file, lambda seq: _digest_at(backup_ledger, seq))
    refuse_older_ledger(manifest, ahead, accept_older_ledger=accept_older_ledger)
    superseded = move_aside([p for p, _ in ahead], time.time())
    say("installing files")
    _install_files(manifest, src, data)
    return record_and_verify(settings, operator, manifest, src, ahead, superseded, say)


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
