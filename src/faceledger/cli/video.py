"""CLI verbs for video: ``video faces|persons|search|labels VIDEO``, ``video notification-key``
(the key a receiver of job notifications verifies them with) and ``stream …``.

``video`` analyses a stored video in this process (through the gateway, so the job
and its end are ledgered) and prints what it found. ``stream`` manages stream processor
definitions (the same ones the server runs) and ``stream watch NAME`` runs one in the
foreground, printing each match as a JSON line until Ctrl-C or the source ends.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from faceledger.cli.common import (
    CliError,
    cli_caller,
    echo_err,
    existing_file,
    load_settings,
    open_gateway,
    print_json,
    scale_lines,
)
from faceledger.domain.scale import SearchScale
from faceledger.services.video.jobs import JobRequest

video_app = typer.Typer(help="Analyse stored video files.", no_args_is_help=True)
stream_app = typer.Typer(help="Live stream processors.", no_args_is_help=True)

Purpose = Annotated[
    str | None, typer.Option("--purpose", help="Why you search (kept in the audit ledger).")
]
Case = Annotated[
    str | None, typer.Option("--case", help="The case reference (kept in the audit ledger).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Every result as JSON.")]


def _analyse(
    kind: str,
    video: Path,
    *,
    collection: str | None = None,
    threshold: float | None = None,
    purpose: str | None = None,
    case: str | None = None,
    start_options: dict[str, Any] | None = None,
    get_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    existing_file(video)
    path = video.resolve()
    base = load_settings()
    # The operator names the file: its folder is readable for this run.
    settings = base.model_copy(update={"video_dirs": [*base.video_dirs, path.parent]})
    with open_gateway(settings) as gate:
        caller = cli_caller(purpose, case)
        request = JobRequest(
            kind,
            {"path": str(path)},
            collection_id=collection,
            threshold=threshold,
            **(start_options or {}),
        )
        job = gate.start_video_job(caller, request)
        gate.run_video_job(job.job_id)
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = gate.get_video_job(
                caller, kind, job.job_id, next_token=token, **(get_options or {})
            )
            items += page.items
            token = page.next_token
            if token is None:
                break
    if page.job.status != "SUCCEEDED":
        raise CliError(f"the analysis failed: {page.job.status_message}")
    out: dict[str, Any] = {"job_id": job.job_id, "metadata": page.job.metadata, "results": items}
    if page.scale is not None:  # a face search: what a candidate means at the collection's size
        out["threshold"] = page.scale.scale.threshold
        out["scale"] = page.scale.as_dict()
    if "label_model_version" in page.job.params:
        out["label_model_version"] = page.job.params["label_model_version"]
    return out


def _people(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per person index: first and last timestamp, and the best match if any."""
    people: dict[int, dict[str, Any]] = {}
    for item in items:
        row = people.setdefault(
            item["index"], {"person": item["index"], "first_ms": item["timestamp_ms"]}
        )
        row["last_ms"] = item["timestamp_ms"]
        for hit in item.get("matches", ()):
            if hit["similarity"] > row.get("similarity", -1):
                row.update(
                    similarity=round(hit["similarity"], 2),
                    face_id=hit["face_id"],
                    external_image_id=hit.get("external_image_id"),
                )
    return [people[i] for i in sorted(people)]


@video_app.command("faces")
def video_faces(video: Path, as_json: AsJson = False) -> None:
    """Detect faces in every analysed frame of VIDEO."""
    out = _analyse("faces", video)
    if as_json:
        print_json(out)
        return
    meta = out["metadata"]
    typer.echo(
        f"{len(out['results'])} face detections in {meta['duration_ms'] / 1000:.1f} s of "
        f"{meta['frame_width']}×{meta['frame_height']} {meta['codec']} video"
    )


@video_app.command("persons")
def video_persons(video: Path, as_json: AsJson = False) -> None:
    """Track the people in VIDEO (by their bodies, with their faces when seen); one line per
    person."""
    out = _analyse("persons", video)
    if as_json:
        print_json(out)
        return
    for row in _people(out["results"]):
        typer.echo(f"person {row['person']}: {row['first_ms']} – {row['last_ms']} ms")


@video_app.command("search")
def video_search(
    video: Path,
    collection: Annotated[str, typer.Option("--collection", "-c")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="Raised to the collection's threshold floor.")
    ] = 80.0,
    purpose: Purpose = None,
    case: Case = None,
    as_json: AsJson = False,
) -> None:
    """Search the people in VIDEO against a collection; one line per person matched."""
    out = _analyse(
        "search", video, collection=collection, threshold=threshold, purpose=purpose, case=case
    )
    if as_json:
        print_json(out)
        return
    matched = [row for row in _people(out["results"]) if "face_id" in row]
    if not matched:
        typer.echo("no one in the video matched the collection")
    for row in matched:
        typer.echo(
            f"person {row['person']} ({row['first_ms']} – {row['last_ms']} ms): "
            f"{row['external_image_id'] or row['face_id']} Similarity {row['similarity']}"
        )
    if "scale" in out:
        said = out["scale"]["video_statement"]
        typer.echo(scale_lines(SearchScale.from_dict(out["scale"])))
        typer.echo(f"{said[0].upper()}{said[1:]}.")
    typer.echo("A match is a lead for human review, not an identification.")


@video_app.command("labels")
def video_labels(
    video: Path,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0, max=100, help="Percent (default 50).")
    ] = 50.0,
    timestamps: Annotated[
        bool,
        typer.Option(
            "--timestamps", help="One row per sampled frame (two a second), not per segment."
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Detect object labels (COCO classes, with Rekognition's names and parents) in VIDEO on
    two frames a second; one line per label segment."""
    aggregate = "TIMESTAMPS" if timestamps else "SEGMENTS"
    out = _analyse(
        "labels",
        video,
        start_options={"min_confidence_pct": min_confidence},
        get_options={"aggregate_by": aggregate, "sort_by": "TIMESTAMP"},
    )
    if as_json:
        print_json(out)
        return
    if not out["results"]:
        typer.echo("no labels found")
    for item in out["results"]:
        label = item["label"]
        span = (
            f"{item['start_ms']} – {item['end_ms']} ms"
            if "start_ms" in item
            else f"{item['timestamp_ms']} ms"
        )
        instances = f", {len(label['instances'])} instances" if label["instances"] else ""
        typer.echo(f"{span}: {label['name']} ({label['confidence_pct']:.1f}%{instances})")


@video_app.command("notification-key")
def notification_key(as_json: AsJson = False) -> None:
    """Print the key that signs job completion notifications (created if absent), for a
    receiver's ``verify_notification``: its id, the key in hex, and its file. Keep it secret.
    An admin verb, ledgered (GetNotificationKey; the record names the key id, not the key)."""
    with open_gateway(load_settings()) as gate:
        got = gate.get_notification_key(cli_caller())
    out = {"key_id": got.key_id, "key_hex": got.key.hex(), "key_file": str(got.key_file)}
    if as_json:
        print_json(out)
        return
    typer.echo(f"key id:    {out['key_id']}")
    typer.echo(f"key (hex): {out['key_hex']}")
    typer.echo(f"key file:  {out['key_file']}")


# -- stream processors ---------------------------------------------------------------------------
def _row(row: Any, live: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {
        "name": row.name,
        "source": row.source,
        "collection_id": row.settings["collection_id"],
        "threshold": row.settings["threshold"],
        **(
            {"person_events": row.settings["connected_home"]}
            if "connected_home" in row.settings
            else {}
        ),
        "outputs": row.outputs,
        "status": row.status,
        "status_message": row.status_message,
    }
    if live:
        out["live"] = live
    return out


@stream_app.command("create")
def stream_create(
    name: str,
    source: Annotated[str, typer.Option("--source", help="rtsp://, http(s)://, camera:N …")],
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Search faces against it.")
    ] = None,
    threshold: Annotated[float | None, typer.Option("--threshold")] = None,
    person_events: Annotated[
        bool,
        typer.Option(
            "--person-events",
            help="Instead of a face search: report people appearing (ConnectedHome PERSON).",
        ),
    ] = False,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0, max=100, help="For --person-events.")
    ] = 50.0,
    jsonl: Annotated[
        str | None, typer.Option("--jsonl", help="Write matches to streams/NAME.jsonl.")
    ] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST matches here.")] = None,
) -> None:
    """Define a stream processor (the server starts it on request): a face search against
    --collection, or --person-events."""
    outputs = {k: v for k, v in (("jsonl", jsonl), ("webhook", webhook)) if v is not None}
    if (collection is None) == (not person_events):
        raise CliError("give exactly one of --collection and --person-events")
    home = {"labels": ["PERSON"], "min_confidence": min_confidence} if person_events else None
    with open_gateway() as gate:
        row = gate.create_stream_processor(
            cli_caller(), name, source, collection_id=collection, threshold=threshold,
            outputs=outputs, connected_home=home,
        )  # fmt: skip
    print_json(_row(row))


@stream_app.command("list")
def stream_list() -> None:
    """Stream processors and their last known status."""
    with open_gateway() as gate:
        rows, token = gate.list_stream_processors(cli_caller())
        while token:
            more, token = gate.list_stream_processors(cli_caller(), next_token=token)
            rows += more
    print_json([_row(r) for r in rows])


@stream_app.command("describe")
def stream_describe(name: str) -> None:
    with open_gateway() as gate:
        row, live = gate.describe_stream_processor(cli_caller(), name)
    print_json(_row(row, live))


@stream_app.command("delete")
def stream_delete(name: str) -> None:
    with open_gateway() as gate:
        gate.delete_stream_processor(cli_caller(), name)
    echo_err(f"deleted stream processor {name}")


@stream_app.command("watch")
def stream_watch(name: str, purpose: Purpose = None, case: Case = None) -> None:
    """Run NAME in the foreground: each match is ledgered, then printed as a JSON line (without
    the best-shot crop). Ctrl-C (SIGINT) or SIGTERM (what systemd and container runtimes send)
    stops it; the stop is ledgered too."""
    with open_gateway() as gate:
        caller = cli_caller(purpose, case)
        with gate.stream_events(caller, name) as events, _sigterm_interrupts():
            try:
                gate.start_stream_processor(caller, name)
                echo_err(f"watching {name} (Ctrl-C or SIGTERM to stop)")
                while True:
                    event = events.get(1.0)
                    if event is None:
                        continue
                    if event.get("type") == "status":
                        echo_err(f"{name}: {event.get('status')}")
                        return
                    event.pop("crop_jpeg_base64", None)
                    typer.echo(json.dumps(event, sort_keys=True))
            except KeyboardInterrupt:
                echo_err("stopping")
            finally:
                row, _ = gate.describe_stream_processor(caller, name)
                if row.status in ("STARTING", "RUNNING", "RECONNECTING"):
                    gate.stop_stream_processor(caller, name)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM and SIGINT interrupt the main thread (KeyboardInterrupt), so a
    foreground watch stops the same way, on the record. SIGINT is handled explicitly too: a
    process started in the background by a non-interactive shell inherits SIGINT ignored, and
    Python then installs no Ctrl-C handler of its own."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.add_typer(video_app, name="video")
    app.add_typer(stream_app, name="stream")
