"""CLI verbs for the audit ledger: ``audit verify|tail|export|checkpoint``, and the leads
searches made: ``audit leads`` (list them by state) and ``audit decide`` (a reviewer's decision
on one candidate; ``docs/REVIEW.md``).

``faceledger.cli.main`` adds these commands to its app with ``register``. The ledger is
``<data_dir>/ledger.sqlite3`` (in PostgreSQL when ``FACELEDGER_DATABASE_URL`` is set), its
signing key ``FACELEDGER_LEDGER_KEY_FILE`` (default ``$XDG_CONFIG_HOME/faceledger/ledger.key``).
``verify`` exits 0 when the ledger is intact and 1 (``first bad record: <seq>: <reason>``) when
it is not; the other verbs only read, except ``checkpoint``, which appends a signed checkpoint.
Each goes through the gateway as the local operator, so each read (ReadLedger, VerifyLedger,
ExportLedger, ListLeads), checkpoint (CheckpointLedger) and decision (ReviewLead) is itself
ledgered. The local operator may not decide on a lead of its own searches (separation of
duties): a reviewer decides with their own access key (``/v1/leads``), or on another account.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from faceledger.cli.common import (
    CliError,
    cli_caller,
    echo_err,
    load_settings,
    print_json,
    print_table,
    progress_bar,
    utc_text,
)
from faceledger.domain.errors import LedgerError

if TYPE_CHECKING:
    from faceledger.audit.ledger import LedgerEntry
    from faceledger.audit.verify import VerifyReport
    from faceledger.domain.leads import Lead
    from faceledger.services.gateway import Gateway

audit_app = typer.Typer(
    help="The audit ledger: verify the hash chain, read and export records.",
    no_args_is_help=True,
)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@contextlib.contextmanager
def _ledger() -> Iterator[Gateway]:
    """The gateway, for its ledger verbs (a ledger that cannot be opened is a clear error)."""
    from faceledger.services.gateway import Gateway

    settings = load_settings()
    try:
        gate = Gateway(settings)
    except LedgerError as exc:
        raise CliError(exc.message) from None
    try:
        yield gate
    finally:
        gate.close()


def parse_time(text: str | None, option: str) -> float | None:
    """Epoch seconds from epoch seconds or ISO 8601 (a time without a zone is UTC)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{option}: expected ISO 8601 (2025-01-31, 2025-01-31T12:00:00Z) or epoch seconds, "
            f"got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _summary(result: dict[str, Any], width: int = 60) -> str:
    """``FaceMatches: 3, FaceMatchThreshold=80.0`` — a result in one short cell."""
    parts = []
    for key, value in result.items():
        if isinstance(value, list | tuple):
            parts.append(f"{key}: {len(value)}")
        elif isinstance(value, dict):
            parts.append(f"{key}: {{…}}")
        else:
            parts.append(f"{key}={value}")
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- verify ----------------------------------------------------------------------------------
def _describe_ok(report: VerifyReport) -> str:
    where = (
        f", the last at seq {report.last_checkpoint_seq}"
        if report.last_checkpoint_seq is not None
        else ""
    )
    witness = f"; witness at seq {report.witness_seq}" if report.witness_seq is not None else ""
    plural = "" if report.checkpoints == 1 else "s"
    macs = (
        f"; every record from seq {report.macs_from} carries a valid MAC"
        if report.macs_from is not None
        else ""
    )
    tail = (
        f"\nunsigned tail: {report.unsigned_tail:,} record(s) after the last signed checkpoint"
        + (f" (authenticated by their MACs; tip at seq {report.tip_seq})" if macs else "")
        if report.unsigned_tail
        else "\nunsigned tail: none (the newest record is a signed checkpoint)"
    )
    return (
        f"ledger intact: {report.records:,} records ({report.checkpoints:,} signed "
        f"checkpoint{plural}{where}{witness}{macs}), verified in {report.seconds:.2f} s{tail}"
    )


@audit_app.command("verify")
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Prove the hash chain and signed checkpoints intact; exit 1 naming the first bad record."""
    with _ledger() as gate:
        if sys.stderr.isatty() and not as_json:
            with progress_bar("verifying", transient=True) as progress:
                report = gate.verify_ledger(cli_caller(), progress=progress)
        else:
            report = gate.verify_ledger(cli_caller())
        path = gate.ledger_location
    if as_json:
        print_json({"ledger": str(path), **report.to_dict()})
    elif report.ok:
        typer.echo(_describe_ok(report))
        for warning in report.warnings:
            echo_err(f"warning: {warning}")
    elif report.first_bad_seq is not None:
        typer.echo(f"first bad record: {report.first_bad_seq}: {report.reason}")
    else:
        typer.echo(f"ledger NOT intact: {report.reason}")
    if not report.ok:
        raise typer.Exit(1)


# -- tail ------------------------------------------------------------------------------------
@audit_app.command("tail")
def tail(
    count: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many records.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The newest records (oldest of them first): who did what, why, and what came of it."""
    from faceledger.audit.export import entry_record

    with _ledger() as gate:
        entries: list[LedgerEntry] = gate.read_ledger(cli_caller(), newest_first=True, limit=count)
    entries.reverse()
    if as_json:
        print_json([entry_record(e) for e in entries])
        return
    from rich.table import Table

    table = Table(title="Audit ledger (newest last)")
    for column in (
        "seq",
        "time (UTC)",
        "principal",
        "roles",
        "operation",
        "collection",
        "outcome",
        "purpose",
        "case",
        "result",
    ):
        table.add_column(column, no_wrap=column in ("seq", "time (UTC)"))
    for entry in entries:
        p = entry.payload
        table.add_row(
            str(entry.seq),
            utc_text(entry.time),
            str(p.get("principal", "")),
            ", ".join(p.get("roles", ())),
            str(p.get("operation", "")),
            p.get("collection_id") or "-",
            str(p.get("outcome", "")),
            p.get("purpose") or "-",
            p.get("case_reference") or "-",
            _summary(p.get("result") or {}),
        )
    print_table(table)
    if not entries:
        typer.echo("the ledger holds no records yet")


# -- export ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:  # 0600: an export says who searched for whom
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    with open(fd, "w", encoding="utf-8", newline="") as out:
        yield out


@audit_app.command("export")
def export(
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601 or epoch seconds; UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (same forms).")] = None,
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection id.")] = None,
    operation: Annotated[
        str | None, typer.Option(help="Only this operation (e.g. SearchFacesByImage).")
    ] = None,
    outcome: Annotated[str | None, typer.Option(help='Only this outcome ("ok" or a code).')] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.jsonl
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
) -> None:
    """Export records (oldest first) matching every filter given, as JSON lines or CSV."""
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    with _ledger() as gate, _output(output) as out:
        count = gate.export_ledger(
            cli_caller(),
            out,
            fmt.value,
            since=start,
            until=end,
            principal=principal,
            collection_id=collection,
            operation=operation,
            outcome=outcome,
        )
    if output is not None:
        echo_err(f"exported {count:,} records to {output}")


# -- checkpoint ------------------------------------------------------------------------------
@audit_app.command("rotate-key")
def rotate_key() -> None:
    """Rotate the ledger key: a record MAC'd with the old key names the new one, a checkpoint
    signed with the new key follows, and the old key is kept beside the new one (retired) so
    that older records still verify. Run it with the service stopped, or let the running
    processes pick the new key up from the rotation record."""
    with _ledger() as gate:
        try:
            new_id = gate.rotate_ledger_key(cli_caller())
        except LedgerError as exc:
            raise CliError(exc.message) from None
        key_file = gate.ledger_key_file
    typer.echo(f"rotated the ledger key {key_file}: new key id {new_id}")


@audit_app.command("checkpoint")
def checkpoint() -> None:
    """Append a signed checkpoint now and move the witness (outside the data directory)."""
    with _ledger() as gate:
        entry = gate.checkpoint_ledger(cli_caller())
        witness = gate.ledger_witness_file
    covers = entry.payload.get("covers_seq")
    typer.echo(f"signed checkpoint {entry.seq} (covers record {covers}); witness: {witness}")


# -- leads -----------------------------------------------------------------------------------
class LeadState(StrEnum):
    open = "open"
    decided = "decided"


class Decision(StrEnum):
    confirmed = "confirmed"
    rejected = "rejected"
    inconclusive = "inconclusive"


def lead_record(lead: Lead) -> dict[str, Any]:
    """A lead as JSON: its search, candidates (with the decision in force) and decisions."""
    latest = lead.latest()
    return {
        "lead_id": lead.lead_id,
        "state": lead.state,
        "created_at": lead.created_at,
        "operation": lead.operation,
        "source": lead.source,
        "request_id": lead.request_id,
        "principal": lead.principal,
        "purpose": lead.purpose,
        "case_reference": lead.case_reference,
        "collection_id": lead.collection_id,
        "threshold": lead.threshold,
        "face_count": lead.face_count,
        "fpir": lead.fpir,
        "hit_rate": lead.hit_rate,
        "candidates": [
            {
                "candidate_id": c.candidate_id,
                "kind": c.kind,
                "similarity": c.similarity,
                "external_image_id": c.external_image_id,
                "decision": latest[c.candidate_id].decision if c.candidate_id in latest else None,
            }
            for c in lead.candidates
        ],
        "decisions": [
            {
                "candidate_id": d.candidate_id,
                "decision": d.decision,
                "note": d.note,
                "reviewer": d.reviewer,
                "decided_at": d.decided_at,
            }
            for d in lead.decisions
        ],
    }


@audit_app.command("leads")
def leads(
    state: Annotated[
        LeadState | None, typer.Option("--state", help="open or decided (default: both).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Only this collection's leads.")
    ] = None,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Newest first (default: oldest, the queue).")
    ] = False,
    count: Annotated[int, typer.Option("-n", "--limit", min=1, max=100, help="How many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    unrecorded: Annotated[
        bool,
        typer.Option(
            "--unrecorded",
            help="Only the leads whose search's ledger record never landed (not in the queue).",
        ),
    ] = False,
) -> None:
    """Leads (searches with candidates) and what reviewers decided: oldest first. Only leads
    whose search was recorded, unless --unrecorded."""
    with _ledger() as gate:
        page = gate.list_leads(
            cli_caller(),
            state=None if state is None else state.value,
            collection_id=collection,
            newest_first=newest_first,
            limit=count,
            unrecorded=unrecorded,
        )
    if as_json:
        print_json([lead_record(lead) for lead in page.leads])
        return
    title = "Unrecorded leads" if unrecorded else "Leads"
    _print_leads(page.leads, title + (f" ({state.value})" if state is not None else ""))


def _print_leads(leads: tuple[Lead, ...], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("lead", "time (UTC)", "state", "collection", "searcher", "case", "candidates"):
        table.add_column(column, no_wrap=column in ("lead", "time (UTC)"))
    for lead in leads:
        latest = lead.latest()
        table.add_row(
            lead.lead_id,
            utc_text(lead.created_at),
            lead.state,
            lead.collection_id,
            lead.principal,
            lead.case_reference or "-",
            "; ".join(
                f"{c.candidate_id} {c.similarity:.1f}"
                f" {latest[c.candidate_id].decision if c.candidate_id in latest else 'undecided'}"
                for c in lead.candidates
            ),
        )
    print_table(table)
    if not leads:
        typer.echo("no leads")


@audit_app.command("probe-crop")
def probe_crop(
    lead_id: Annotated[str, typer.Argument(metavar="LEAD_ID")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write the JPEG here (refused if it exists).")
    ],
) -> None:
    """Write a lead's searched face (JPEG) to a file: a ledgered view (GetLeadProbeCrop)."""
    if out.exists():
        raise CliError(f"{out} exists: choose another file")
    with _ledger() as gate:
        jpeg = gate.get_lead_probe_crop(cli_caller(), lead_id)
    out.write_bytes(jpeg)
    typer.echo(f"wrote {out} ({len(jpeg):,} bytes)")


@audit_app.command("decide")
def decide(
    lead_id: Annotated[str, typer.Argument(metavar="LEAD_ID")],
    candidate: Annotated[str, typer.Argument(metavar="CANDIDATE", help="FaceId or UserId.")],
    decision: Annotated[Decision, typer.Option("--decision", help="What the reviewer found.")],
    note: Annotated[
        str, typer.Option("--note", help="Why (required for confirmed; ≤ 1,000 characters).")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the lead as JSON.")] = False,
) -> None:
    """Record a decision on one candidate of a lead (a ledger record linked to the search)."""
    with _ledger() as gate:
        lead = gate.review_lead(
            cli_caller(), lead_id, candidate, decision=decision.value, note=note
        )
    if as_json:
        print_json(lead_record(lead))
        return
    typer.echo(f"recorded: {candidate} {decision.value}; lead {lead.lead_id} is {lead.state}")


@audit_app.command("decisions")
def decisions(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Only this collection's leads.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Decisions by outcome: per collection and threshold, leads, confirmed / rejected /
    inconclusive, undecided, and the observed rejected share (the published false-match
    figure). ``faceledger eval report --decisions`` puts the same table in the report."""
    from faceledger.evaluation.report.decisions import decisions_text

    with _ledger() as gate:
        rows = gate.lead_outcomes(cli_caller(), collection_id=collection)
    if as_json:
        print_json(rows)
        return
    typer.echo(decisions_text(rows))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.add_typer(audit_app, name="audit")
