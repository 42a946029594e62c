"""The gateway's verbs on the ledger itself: reading, exporting, verifying, checkpointing and
rotating its key — each ledgered too."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from faceledger.audit.ledger import LedgerEntry
from faceledger.domain.audit import Caller
from faceledger.domain.errors import LedgerError
from faceledger.services.gateway_base import GatewayParts, ledgered_filters

if TYPE_CHECKING:
    from faceledger.audit.verify import Progress, VerifyReport


class LedgerVerbs(GatewayParts):
    """Reading and signing the ledger."""

    @property
    def ledger_location(self) -> str:
        return str(self._ledger.location)

    @property
    def ledger_witness_file(self) -> Path:
        return self._ledger.witness_file

    def read_ledger(
        self,
        caller: Caller,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        **filters: Any,
    ) -> list[LedgerEntry]:
        """Records matching ``filters`` (those of ``Ledger.entries``). The read is itself
        ledgered (ReadLedger, with its filters and count) after it."""
        return self._run(
            caller,
            "ReadLedger",
            lambda: list(self._ledger.entries(limit=limit, newest_first=newest_first, **filters)),
            collection_id=filters.get("collection_id"),
            summary=lambda rows: {"filters": ledgered_filters(filters), "count": len(rows)},
        )

    def export_ledger(self, caller: Caller, out: TextIO, fmt: str = "jsonl", **filters: Any) -> int:
        """Write every matching record, oldest first, to ``out`` as ``fmt`` (jsonl, csv);
        returns how many. Ledgered as ExportLedger."""
        from faceledger.audit.export import write

        return self._run(
            caller,
            "ExportLedger",
            lambda: write(self._ledger.entries(**filters), out, fmt),
            collection_id=filters.get("collection_id"),
            summary=lambda count: {
                "filters": ledgered_filters(filters),
                "format": fmt,
                "count": count,
            },
        )

    def verify_ledger(self, caller: Caller, *, progress: Progress | None = None) -> VerifyReport:
        """Check the chain, the checkpoints' signatures and the witness; ledgered as
        VerifyLedger with the verdict. When the ledger is broken and refuses even that record,
        the report is still returned: the operator must learn why."""
        reports: list[VerifyReport] = []

        def work() -> VerifyReport:
            report = self._ledger.verify(progress=progress)
            if report.ok:
                report = dataclasses.replace(
                    report, warnings=report.warnings + self._unrecorded_leads_warning()
                )
            reports.append(report)
            return report

        try:
            return self._run(
                caller,
                "VerifyLedger",
                work,
                summary=lambda r: {
                    "intact": r.ok,
                    "records": r.records,
                    "first_bad_seq": r.first_bad_seq,
                },
            )
        except LedgerError:
            if reports and not reports[0].ok:
                return reports[0]
            raise

    def _unrecorded_leads_warning(self) -> tuple[str, ...]:
        """A warning naming the leads no ledger record names (``docs/REVIEW.md``)."""
        missing = self._leads.unrecorded(self._ledger)
        if not missing:
            return ()
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        return (
            f"{len(missing)} lead(s) unrecorded (in no ledger record: the process stopped "
            f"between writing the lead and its search's record): {shown}",
        )

    def checkpoint_ledger(self, caller: Caller) -> LedgerEntry:
        """Append a signed checkpoint now and move the witness; ledgered as CheckpointLedger."""
        return self._run(
            caller,
            "CheckpointLedger",
            self._ledger.checkpoint,
            summary=lambda entry: {"checkpoint_seq": entry.seq},
        )

    def rotate_ledger_key(self, caller: Caller) -> str:
        """Rotate the ledger key (``ChainLedger.rotate_key``); returns the new key id. Ledgered
        as RotateLedgerKey (the rotation record itself follows it)."""
        return self._run(
            caller,
            "RotateLedgerKey",
            lambda: self._ledger.rotate_key(caller.principal.name),
            summary=lambda new_id: {"new_key_id": new_id},
        )

    @property
    def ledger_key_file(self) -> Path:
        return self._ledger.key_file
