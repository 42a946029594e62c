#!/bin/sh
# One FaceLedger backup into $FACELEDGER_BACKUP_DIR/<UTC time>/, then rotation: the newest
# $FACELEDGER_BACKUP_KEEP complete backups (those with a manifest.json) are kept, older ones
# and interrupted ones (no manifest) are removed. On success, writes
# faceledger_backup_last_success_timestamp_seconds (and the size) for node_exporter's textfile
# collector when $FACELEDGER_TEXTFILE_DIR is set. The ledger key is never in a backup: back up
# $FACELEDGER_LEDGER_KEY_FILE separately (see docs/DEPLOY.md).
set -eu
root=${FACELEDGER_BACKUP_DIR:?set FACELEDGER_BACKUP_DIR}
keep=${FACELEDGER_BACKUP_KEEP:-14}
mkdir -p -m 0700 "$root"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$root/$stamp" ]; do  # two runs within one second
    sleep 1
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
done
faceledger backup "$root/$stamp" > "$root/.last-summary.json"
# Rotation: complete backups, newest first; remove beyond $keep. Then interrupted ones.
ls -1 "$root" | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort -r | while read -r name; do
    if [ -f "$root/$name/manifest.json" ]; then
        keep=$((keep - 1))
        if [ "$keep" -lt 0 ]; then rm -rf "${root:?}/$name"; fi
    elif [ "$name" != "$stamp" ]; then
        rm -rf "${root:?}/$name"
    fi
done
if [ -n "${FACELEDGER_TEXTFILE_DIR:-}" ] && [ -d "$FACELEDGER_TEXTFILE_DIR" ]; then
    size=$(sed -n 's/.*"size_bytes": *\([0-9]*\).*/\1/p' "$root/.last-summary.json" | head -n 1)
    tmp="$FACELEDGER_TEXTFILE_DIR/.faceledger_backup.prom.$$"
    {
        echo "# HELP faceledger_backup_last_success_timestamp_seconds When the last backup finished."
        echo "# TYPE faceledger_backup_last_success_timestamp_seconds gauge"
        echo "faceledger_backup_last_success_timestamp_seconds $(date -u +%s)"
        echo "# HELP faceledger_backup_size_bytes Size of the last backup."
        echo "# TYPE faceledger_backup_size_bytes gauge"
        echo "faceledger_backup_size_bytes ${size:-0}"
    } > "$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$FACELEDGER_TEXTFILE_DIR/faceledger_backup.prom"
fi
