"""``faceledger backup DEST`` and ``faceledger restore SRC`` (see ``faceledger.services.backup``).

``faceledger.cli.main`` adds these commands to its app with ``register``. ``backup`` runs
beside a serving server; ``restore`` wants it stopped. Both print the manifest's summary as
JSON on stdout; ``restore`` exits 1 when the restored ledger does not verify.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceledger.cli.common import cli_caller, echo_err, load_settings, print_json


def backup(
    dest: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")],
) -> None:
    """Copy the store, the ledger and index snapshots to DEST while the server may be serving
    (SQLite's online backup API; pg_dump on PostgreSQL); writes DEST/manifest.json last, then
    a CreateBackup ledger record. The ledger key is NOT copied: back it up separately."""
    from faceledger.services.backup import take_backup

    manifest = take_backup(
        load_settings(), dest, cli_caller(), say=lambda step: echo_err(f"backup: {step}")
    )
    print_json(
        {
            "backup": str(dest),
            "backend": manifest.backend,
            "files": len(manifest.files),
            "size_bytes": manifest.size_bytes,
            "seconds": round(manifest.finished_at - manifest.created_at, 3),
            "ledger_id": manifest.ledger_id,
            "ledger_seq": manifest.ledger_seq,
            "ledger_key_id": manifest.ledger_key_id,
            "skipped": list(manifest.skipped),
        }
    )
    echo_err(f"note: {manifest.key_note}")


def restore(
    src: Annotated[Path, typer.Argument(help="A backup folder (with manifest.json).")],
    accept_older_ledger: Annotated[
        bool,
        typer.Option(
            "--accept-older-ledger",
            help="Restore even though the key folder's tip/witness name newer ledger records "
            "(they are given up; the tip and witness are kept aside and the ledger says so).",
        ),
    ] = False,
) -> None:
    """Check the backup's digests and key, restore it into FACELEDGER_DATA_DIR (or the
    database), record the restore in the ledger and run `audit verify`. Stop the server
    first. Refuses to overwrite a newer ledger."""
    from faceledger.services.backup import restore_backup

    result = restore_backup(
        load_settings(),
        src,
        cli_caller(),
        accept_older_ledger=accept_older_ledger,
        say=lambda step: echo_err(f"restore: {step}"),
    )
    report = result.report
    print_json(
        {
            "restored": str(src),
            "ledger_id": result.manifest.ledger_id,
            "backup_ledger_seq": result.manifest.ledger_seq,
            "restore_record_seq": result.restore_seq,
            "superseded": list(result.superseded),
            "verify": report.to_dict(),
        }
    )
    if not report.ok:
        echo_err(f"error: the restored ledger does not verify: {report.reason}")
        raise typer.Exit(1)
    echo_err(f"restored; ledger intact ({report.records:,} records)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.command("backup")(backup)
    app.command("restore")(restore)
