"""``faceledger eval report``: FMR and FNMR overall and per group, as an HTML + JSON report.

``faceledger.cli.main`` adds this command to its ``eval`` group with ``register``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceledger.cli.common import (
    CliError,
    cli_caller,
    echo_err,
    face_service,
    load_settings,
    open_gateway,
    print_json,
    progress_bar,
)

if TYPE_CHECKING:
    from faceledger.config import Settings
    from faceledger.evaluation.report import ReportRequest


class FaceChoice(StrEnum):
    """Which face of an image is evaluated (faceledger.evaluation.fairness.FACE_CHOICES)."""

    largest = "largest"
    central = "central"


def _existing(path: Path | None, option: str) -> Path | None:
    if path is not None and not path.is_file():
        raise CliError(f"{option}: no such file: {path}")
    return path


def _compact(report: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """What stdout gets: where the report is, and the displayed rates per threshold."""

    def rates(pop: dict[str, Any]) -> dict[str, Any]:
        return {
            key: {"fmr": at["fmr"]["display"], "fnmr": at["fnmr"]["display"]}
            for key, at in pop["at"].items()
        }

    result: dict[str, Any] = {
        "report_html": str(out_dir / "report.html"),
        "report_json": str(out_dir / "report.json"),
        "face_model_version": report["meta"]["face_model_version"],
        "face": report["meta"]["face_choice"],
        "identities": report["overall"]["identities"],
        "images": report["overall"]["images"],
        "genuine_pairs": report["overall"]["genuine_pairs"],
        "impostor_pairs": report["overall"]["impostor_pairs"],
        "overall": rates(report["overall"]),
    }
    if report["groups"]["grouped"]:
        result["groups"] = {g["group"]: rates(g) for g in report["per_group"]}
    return result


DataOpt = Annotated[
    Path, typer.Option("--data", help="Labelled images laid out as DIR/<identity>/<image>.")
]
GroupsOpt = Annotated[
    Path | None,
    typer.Option("--groups", help="CSV 'identity,group' (missing identities: 'unassigned')."),
]
ExclusionsOpt = Annotated[
    Path | None,
    typer.Option("--exclusions", help="Pairs to drop (format of bench/lfw_exclusions.txt)."),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Report folder (default: <data_dir>/reports/fairness)."),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache", help="Folder for the embeddings cache (default: --out)."),
]
FaceOpt = Annotated[
    FaceChoice,
    typer.Option(
        "--face",
        help="Face kept per image: 'largest' (as the API compares) or 'central' (nearest "
        "the image centre: LFW's labelled person when a bystander is larger).",
    ),
]
TitleOpt = Annotated[str | None, typer.Option("--title", help="Report title.")]
NoteOpt = Annotated[
    list[str] | None,
    typer.Option("--note", help="A note on the data for the report (repeatable)."),
]
DecisionsOpt = Annotated[
    bool,
    typer.Option(
        "--decisions",
        help="Add the installation's decisions by outcome (what reviewers decided about "
        "its leads; read through the gateway, so ledgered as ListLeads).",
    ),
]


def eval_report(
    data: DataOpt,
    groups: GroupsOpt = None,
    exclusions: ExclusionsOpt = None,
    out: OutOpt = None,
    cache: CacheOpt = None,
    face: FaceOpt = FaceChoice.largest,
    title: TitleOpt = None,
    note: NoteOpt = None,
    decisions: DecisionsOpt = False,
) -> None:
    """FMR and FNMR at each Similarity threshold, overall and per group; HTML + JSON report.

    Every pair of images is scored (genuine: same identity; impostor: two identities).
    Embeddings are cached, so a second run with other groups or exclusions is quick.
    """

    from faceledger.evaluation.report import ReportRequest

    settings = load_settings()
    if not data.is_dir():
        raise CliError(f"--data: no such folder: {data}")
    outcomes = None
    if decisions:
        with open_gateway(settings) as gate:
            outcomes = tuple(gate.lead_outcomes(cli_caller()))
    request = ReportRequest(
        data_dir=data,
        out_dir=out if out is not None else settings.data_dir / "reports" / "fairness",
        groups_file=_existing(groups, "--groups"),
        exclusions_file=_existing(exclusions, "--exclusions"),
        cache_dir=cache,
        face=face.value,
        notes=tuple(note or ()),
        title=title or ReportRequest.title,
        decisions=outcomes,
    )
    _write_report(settings, request)


def _write_report(settings: Settings, request: ReportRequest) -> None:
    """Embed the images, write the report and print its summary (JSON on stdout)."""
    from faceledger.evaluation.report import run_report, sources_summary, summary_table

    engine = face_service(settings).engine
    try:
        with progress_bar("embedding images", transient=True) as progress:
            report = run_report(engine, request, progress=progress)
    finally:
        engine.close()
    echo_err(summary_table(report))
    echo_err(sources_summary(report))
    if request.decisions is not None:
        from faceledger.evaluation.report import decisions_text

        echo_err(decisions_text(list(request.decisions)))
    print_json(_compact(report, request.out_dir))
    echo_err(f"report written to {request.out_dir / 'report.html'}")


def register(eval_app: typer.Typer) -> None:
    """Add this module's commands to ``eval_app`` (called by ``faceledger.cli.main``)."""
    eval_app.command("report")(eval_report)
