"""CLI verbs for collections: ``collections …`` (with ``policy``), ``index DIR``, ``search PHOTO``.

``faceledger.cli.main`` adds these commands to its app with ``register``. Every verb calls
the gateway as the local operator, so each is written to the audit ledger.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceledger.cli.common import (
    CliError,
    cli_caller,
    echo_err,
    existing_file,
    open_gateway,
    print_json,
    scale_lines,
)
from faceledger.domain.errors import FaceLedgerError

if TYPE_CHECKING:
    from rich.progress import Progress

    from faceledger.domain.audit import Caller
    from faceledger.domain.results import SearchByImageResult
    from faceledger.services.gateway import Gateway

collections_app = typer.Typer(
    help="Create, list, describe and delete collections; show and set their policy.",
    no_args_is_help=True,
)

_UNSAFE = re.compile(r"[^a-zA-Z0-9_.\-:]")


def external_id_for(path: Path, root: Path) -> str:
    """ExternalImageId from a path relative to ``root``.

    '/' becomes ':' and other characters outside Rekognition's pattern become '_'
    (``2024/Jane Doe.jpg`` → ``2024:Jane_Doe.jpg``).
    """
    rel = path.relative_to(root).as_posix().replace("/", ":")
    return _UNSAFE.sub("_", rel)[-255:]


def _collection_dict(c: object) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(c)  # type: ignore[call-overload]


@collections_app.command("create")
def create(collection_id: Annotated[str, typer.Argument(metavar="COLLECTION")]) -> None:
    """Create an empty collection pinned to the server's model pack."""
    with open_gateway() as gate:
        created = gate.create_collection(cli_caller(), collection_id)
    print_json(_collection_dict(created))


@collections_app.command("describe")
def describe(collection_id: Annotated[str, typer.Argument(metavar="COLLECTION")]) -> None:
    """FaceCount, UserCount, FaceModelVersion and creation time."""
    with open_gateway() as gate:
        described = gate.describe_collection(cli_caller(), collection_id)
    print_json(_collection_dict(described))


@collections_app.command("list")
def list_(
    max_results: Annotated[int, typer.Option("--max-results")] = 1000,
    next_token: Annotated[str | None, typer.Option("--next-token")] = None,
) -> None:
    """Collections in id order (paginated)."""
    with open_gateway() as gate:
        page, token = gate.list_collections(
            cli_caller(), next_token=next_token, max_results=max_results
        )
    print_json({"collections": [_collection_dict(c) for c in page], "next_token": token})


@collections_app.command("delete")
def delete(collection_id: Annotated[str, typer.Argument(metavar="COLLECTION")]) -> None:
    """Delete a collection: every face, vector, user and index file goes."""
    with open_gateway() as gate:
        gate.delete_collection(cli_caller(), collection_id)
    echo_err(f"deleted collection {collection_id}")


CollectionArg = Annotated[str, typer.Argument(metavar="COLLECTION")]
RequirePurposeOpt = Annotated[
    bool | None,
    typer.Option(
        "--require-purpose/--no-require-purpose",
        help="Whether searches must carry a purpose and a case reference.",
        show_default=False,
    ),
]
FloorOpt = Annotated[
    float | None,
    typer.Option(
        "--floor",
        metavar="N",
        help="Pin the threshold floor (calibrated Similarity 0–100): lower requested "
        "thresholds are raised to it.",
    ),
]
SizeFloorOpt = Annotated[
    bool,
    typer.Option(
        "--size-floor",
        help="Unpin the floor: it follows the collection's size (the lowest Similarity "
        "whose expected FPIR at its face count is within 0.1 %).",
    ),
]
RetentionDaysOpt = Annotated[
    int | None,
    typer.Option(
        "--retention-days", metavar="N", help="Retention in days (0: no retention limit)."
    ),
]
KeepFaceCropsOpt = Annotated[
    bool | None,
    typer.Option(
        "--keep-face-crops/--no-keep-face-crops",
        help="Whether faces enrolled from now on keep an encrypted crop for review "
        "(FACELEDGER_CROP_KEY_FILE).",
        show_default=False,
    ),
]


@collections_app.command("policy")
def policy(
    collection_id: CollectionArg,
    require_purpose: RequirePurposeOpt = None,
    floor: FloorOpt = None,
    size_floor: SizeFloorOpt = False,
    retention_days: RetentionDaysOpt = None,
    keep_face_crops: KeepFaceCropsOpt = None,
) -> None:
    """Show COLLECTION's accountability policy; with options, change those settings (the
    others are kept). A collection without a policy has the installation's defaults."""
    changes = _policy_changes(require_purpose, floor, size_floor, retention_days, keep_face_crops)
    caller = cli_caller()
    with open_gateway() as gate:
        current = gate.get_policy(caller, collection_id)
        if changes:
            current = gate.put_policy(
                caller, collection_id, dataclasses.replace(current, **changes)
            )
    print_json({"collection_id": collection_id, **dataclasses.asdict(current)})


def _policy_changes(
    require_purpose: bool | None,
    floor: float | None,
    size_floor: bool,
    retention_days: int | None,
    keep_face_crops: bool | None,
) -> dict[str, Any]:
    """The policy fields ``policy``'s options change (none given: an empty dict)."""
    changes: dict[str, Any] = {}
    if require_purpose is not None:
        changes["require_purpose"] = require_purpose
    if floor is not None and size_floor:
        raise typer.BadParameter("give --floor N or --size-floor, not both")
    if floor is not None:
        changes["threshold_floor"] = floor
    if size_floor:
        changes["threshold_floor"] = None
    if retention_days is not None:
        changes["retention_days"] = retention_days or None
    if keep_face_crops is not None:
        changes["keep_face_crops"] = keep_face_crops
    return changes


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def index(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of photos (recursive).")],
    collection: Annotated[str, typer.Option("--collection", "-c")],
    max_faces: Annotated[int | None, typer.Option("--max-faces", help="Per image, 1–100.")] = None,
    quality_filter: Annotated[str, typer.Option("--quality-filter")] = "AUTO",
    all_faces: Annotated[
        bool,
        typer.Option(
            "--all-faces",
            help="Enrol every face of each photo (IndexFaces' rule) instead of its subject only.",
        ),
    ] = False,
) -> None:
    """Enrol every photo under DIR (ExternalImageId = relative path); resumable.

    By default one face per photo is enrolled, the subject: the largest face; faces within
    10 % of its box area tie, and the one nearest the image centre wins. Other faces are
    skipped as NOT_THE_SUBJECT, so bystanders are never filed under the photo's name.
    --all-faces enrols every face that passes the quality filter (up to --max-faces).

    Files already enrolled under their ExternalImageId are skipped, so an interrupted run
    continues where it stopped. Unreadable files and faces that fail the quality filter are
    summarised at the end and never stop the run. Each image enrolled is one IndexFaces
    record in the audit ledger.
    """
    if not folder.is_dir():
        raise CliError(f"no such folder: {folder}")
    caller = cli_caller()
    with open_gateway() as gate:
        _index_folder(
            gate, caller, folder, collection, max_faces, quality_filter, subject_only=not all_faces
        )


@dataclasses.dataclass
class _IndexTally:
    """What ``index`` counted so far (one run's own tally, not shared)."""

    indexed_faces: int = 0
    no_face: int = 0
    reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    unreadable: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def summary(self, elapsed_s: float, *, processed: bool) -> dict[str, object]:
        """The counts for ``index``'s report (a rate only when any file was ``processed``)."""
        return {
            "indexed_faces": self.indexed_faces,
            "faces_per_s": round(self.indexed_faces / elapsed_s, 1) if processed else 0.0,
            "seconds": round(elapsed_s, 1),
            "images_without_face": self.no_face,
            "unindexed_faces_by_reason": dict(self.reasons),
            "unreadable_files": [{"file": f, "error": e} for f, e in self.unreadable],
        }


def _index_folder(
    gate: Gateway,
    caller: Caller,
    folder: Path,
    collection: str,
    max_faces: int | None,
    quality_filter: str,
    *,
    subject_only: bool = True,
) -> None:
    """``index``: worker processes analyse the photos; the gateway enrols each one."""
    gate.describe_collection(caller, collection)  # fail early on an unknown collection
    # a collection that keeps face crops needs each photo's pixels here too (workers' results
    # carry none); decoded again only then
    crops = gate.get_policy(caller, collection).keep_face_crops
    root = folder.resolve()
    files = _files(root)
    # resuming: which files are enrolled already (ids only, no biometric data; ledgered)
    done_ids = gate.external_image_ids(caller, collection)
    todo = [p for p in files if external_id_for(p, root) not in done_ids]
    tally = _IndexTally()
    start = time.perf_counter()
    with _progress_bar() as bar:
        task = bar.add_task("indexing", total=len(todo), rate="")
        with contextlib.closing(gate.analyse_files(todo)) as analysed:  # stops the workers
            for path, result in analysed:
                if isinstance(result, FaceLedgerError):
                    rel = str(path.relative_to(root))
                    tally.unreadable.append((rel, f"{result.code}: {result.message}"))
                else:
                    enrolled = gate.index_faces(
                        caller,
                        collection,
                        result,
                        pixels=gate.decode_image(gate.read_image_file(path)) if crops else None,
                        external_image_id=external_id_for(path, root),
                        max_faces=max_faces,
                        quality_filter=quality_filter,
                        subject_only=subject_only,
                    )
                    tally.indexed_faces += len(enrolled.face_records)
                    tally.no_face += len(result.faces) == 0
                    for face in enrolled.unindexed:
                        tally.reasons.update(face.reasons)
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, rate=f"{tally.indexed_faces / elapsed:.1f} faces/s")
    elapsed = time.perf_counter() - start
    print_json(
        {
            "collection": collection,
            "files": len(files),
            "skipped_already_indexed": len(files) - len(todo),
            "processed": len(todo),
            "faces_per_photo": "subject" if subject_only else "all",
            **tally.summary(elapsed, processed=bool(todo)),
        }
    )


def _progress_bar() -> Progress:
    """``index``'s progress bar on stderr: count, faces/s, elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


ThresholdOpt = Annotated[
    float,
    typer.Option(
        "--threshold", help="Similarity 0–100 (raised to the collection's threshold floor)."
    ),
]
PurposeOpt = Annotated[
    str | None,
    typer.Option("--purpose", help="Why you search (kept in the audit ledger)."),
]
CaseOpt = Annotated[
    str | None,
    typer.Option("--case", help="The case reference (kept in the audit ledger)."),
]
AsJsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]


def search(
    photo: Annotated[Path, typer.Argument(metavar="PHOTO")],
    collection: Annotated[str, typer.Option("--collection", "-c")],
    threshold: ThresholdOpt = 80.0,
    max_faces: Annotated[int, typer.Option("--max-faces")] = 10,
    purpose: PurposeOpt = None,
    case: CaseOpt = None,
    as_json: AsJsonOpt = False,
) -> None:
    """Search a collection with the largest face of PHOTO; candidates as a table.

    A collection whose policy requires a purpose refuses a search without --purpose and
    --case; the threshold applied (shown) is at least the collection's threshold floor.
    """
    existing_file(photo)
    with open_gateway() as gate:
        result = gate.search_faces_by_image(
            cli_caller(purpose, case),
            collection,
            gate.read_image_file(photo),
            max_faces=max_faces,
            threshold=threshold,
        )
        calibration = gate.calibration
    rows = [
        {
            "similarity": round(m.similarity, 2),
            "false_match_rate_at_most": calibration.false_match_rate(m.similarity),
            "face_id": m.face.face_id,
            "external_image_id": m.face.external_image_id,
            "user_id": m.face.user_id,
        }
        for m in result.matches
    ]
    if as_json:
        scale = result.scale
        print_json(
            {
                "threshold": result.threshold,
                "requested_threshold": threshold,
                "matches": rows,
                "scale": None
                if scale is None
                else {**scale.as_dict(), "statement": scale.statement},
                "lead_id": result.lead_id,
            }
        )
        return
    _print_candidates(collection, result, rows, threshold)


def _print_candidates(
    collection: str, result: SearchByImageResult, rows: list[dict[str, Any]], threshold: float
) -> None:
    """``search``'s table of candidates, then what a reader must know about them."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{len(rows)} candidate(s) in {collection} at Similarity ≥ {result.threshold:g}"
    )
    for column in ("Similarity", "FMR ≤", "ExternalImageId", "FaceId", "UserId"):
        table.add_column(column)
    for r in rows:
        fmr = r["false_match_rate_at_most"]
        table.add_row(
            f"{r['similarity']:.2f}",
            f"{fmr:.0e}" if fmr is not None else "-",
            str(r["external_image_id"] or ""),
            str(r["face_id"]),
            str(r["user_id"] or ""),
        )
    Console().print(table)
    if result.threshold != threshold:
        typer.echo(
            f"threshold {result.threshold:g} applied: the collection's floor raised the "
            f"requested {threshold:g}"
        )
    if not rows:
        typer.echo("no candidate above the threshold")
    if result.lead_id is not None:
        typer.echo(
            f"lead {result.lead_id}: a reviewer records a decision on each candidate "
            f"(faceledger audit decide {result.lead_id} FACE_ID --decision …)"
        )
    if result.scale is not None:
        typer.echo(scale_lines(result.scale))
    typer.echo("A match is a lead for human review, not an identification.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.add_typer(collections_app, name="collections")
    app.command("index")(index)
    app.command("search")(search)
