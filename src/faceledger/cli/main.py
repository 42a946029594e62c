"""``faceledger``: serve the API, detect and compare faces, manage model packs, evaluate.

Results go to stdout as JSON (or a table); messages, progress and errors go to stderr.
Exit codes: 0 success · 1 a verification failed (``models verify``) or an internal error ·
2 a usage error or a FaceLedger error (``error: <Code>: <message>``) · 130 interrupted.
Settings come from ``FACELEDGER_*`` environment variables (see ``faceledger.config``).

Every command that reads or changes biometric data or access keys goes through the accountable
gateway (``Gateway``) as the local operator (``local_operator()``: source "cli", the
operating-system user), so it is written to the audit ledger like an API call.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceledger import __version__
from faceledger.cli import audit, backup, db, eval_report, keys, labels, video
from faceledger.cli import collections as collection_commands
from faceledger.cli.common import (
    CliError,
    cli_caller,
    echo_err,
    existing_file,
    face_service,
    load_settings,
    open_gateway,
    print_json,
    print_table,
    progress_bar,
)
from faceledger.domain.errors import FaceLedgerError

if TYPE_CHECKING:
    from faceledger.domain.faces import Image
    from faceledger.logs import LogFormat

logger = logging.getLogger("faceledger.cli")

app = typer.Typer(
    name="faceledger",
    help="Self-hosted face recognition with an accountable audit ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Model packs: list and verify.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure accuracy on public benchmarks.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")


# -- helpers used by this module's commands only ----------------------------------------------
def _configure_logging(level: str, log_format: LogFormat = "human") -> None:
    from faceledger.logs import configure_logging

    configure_logging(level, log_format)


_ANNOTATE_FORMATS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# BGR colours per landmark, in LANDMARK_NAMES order.
_LANDMARK_COLOURS = ((255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255))


def _write_annotated(image: Image, faces: list[dict[str, Any]], out: Path) -> None:
    """A copy of ``image`` with each face's box, number and landmarks drawn on it."""
    import cv2

    from faceledger.domain.faces import LANDMARK_NAMES

    suffix = out.suffix.lower()
    if suffix not in _ANNOTATE_FORMATS:
        raise CliError(
            f"--annotate: cannot tell the image format from {out.name!r}; "
            f"use one of {', '.join(_ANNOTATE_FORMATS)}"
        )
    canvas = image.pixels_bgr.copy()
    thickness = max(1, round(max(image.width_px, image.height_px) / 500))
    for number, face in enumerate(faces, start=1):
        box = face["bbox_px"]
        x1, y1 = round(box["left"]), round(box["top"])
        x2, y2 = round(box["left"] + box["width"]), round(box["top"] + box["height"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 200, 0), thickness)
        label = f"{number} {face['confidence']:.0f}%"
        cv2.putText(
            canvas,
            label,
            (x1, max(0, y1 - 4 * thickness)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            (0, 200, 0),
            thickness,
            cv2.LINE_AA,
        )
        for name, colour in zip(LANDMARK_NAMES, _LANDMARK_COLOURS, strict=True):
            point = face["landmarks_px"][name]
            cv2.circle(canvas, (round(point["x"]), round(point["y"])), 2 * thickness, colour, -1)
    ok, encoded = cv2.imencode(suffix, canvas)
    if not ok:
        raise CliError(f"--annotate: could not encode {out.name}")
    try:
        out.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None


# -- commands --------------------------------------------------------------------------------
def _version(value: bool) -> None:
    if value:
        typer.echo(f"faceledger {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Self-hosted face recognition with an accountable audit ledger."""
    from faceledger.services.private_files import restrict_umask

    restrict_umask()  # before any command creates a file: 0600 files, 0700 folders


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate (chain): serve HTTPS. Needs --tls-key."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="PEM private key of --tls-cert (keep it 0600).")
    ] = None,
) -> None:
    """Run the HTTP API (native /v1 and docs at /docs) with uvicorn (HTTPS with --tls-*)."""
    settings = load_settings(host=host, port=port, tls_cert_file=tls_cert, tls_key_file=tls_key)
    for path in (settings.tls_cert_file, settings.tls_key_file):
        if path is not None and not path.is_file():
            raise CliError(f"no such TLS file: {path}")
    _configure_logging(settings.log_level, settings.log_format)
    from faceledger.process import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts: keeps a long-running server's RSS flat
    # Fail here with one line (unknown pack, licence not accepted, missing or tampered files)
    # rather than with uvicorn's start-up traceback; the app's lifespan then loads the pack.
    face_service(settings).registry.load(settings.default_pack)
    # The first admin key (shown once on stderr) and the insecure-mode warning.
    keys.announce_keys_at_start(settings)
    import uvicorn

    from faceledger.api.app import create_app

    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"{'https' if settings.tls else 'http'}://{shown_host}:{settings.port}"
    logger.info("FaceLedger %s serving on %s (API docs at %s/docs)", __version__, url, url)
    if not settings.tls and settings.host not in ("127.0.0.1", "::1", "localhost"):
        logger.warning(
            "serving plain HTTP on %s: access keys, photos and results cross the network in "
            "clear; use --tls-cert/--tls-key or a TLS reverse proxy (docs/SECURITY.md)",
            settings.host,
        )
    from faceledger.api.shutdown import exit_zero_after_sigterm

    exit_zero_after_sigterm()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        # Forwarded headers are believed only from FACELEDGER_TRUSTED_PROXIES (create_app).
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        log_config=None,  # our handlers (configure_logging) format uvicorn's records too
        access_log=False,  # faceledger.access logs each request, without query strings
    )


@app.command()
def detect(
    photo: Annotated[Path, typer.Argument(help="A JPEG or PNG image.")],
    annotate: Annotated[
        Path | None,
        typer.Option(
            "--annotate",
            metavar="OUT.jpg",
            help="Also write a copy with boxes and landmarks drawn.",
        ),
    ] = None,
    max_faces: Annotated[
        int, typer.Option("--max-faces", min=1, max=100, help="At most this many faces.")
    ] = 100,
) -> None:
    """Detect faces: JSON with pixel boxes, confidence, landmarks, quality and pose."""
    existing_file(photo)
    with open_gateway() as gate:
        data = gate.read_image_file(photo)
        analysed = gate.detect_faces(cli_caller(), data)
        result = gate.detect_result(analysed, max_faces=max_faces)
        if annotate is not None:
            _write_annotated(gate.decode_image(data), result["faces"], annotate)
            echo_err(f"wrote {annotate} ({len(result['faces'])} faces)")
    print_json(result)


@app.command()
def compare(
    source: Annotated[Path, typer.Argument(help="Image whose largest face is compared.")],
    target: Annotated[Path, typer.Argument(help="Image whose faces are compared with it.")],
) -> None:
    """Compare the largest face of SOURCE with every face of TARGET (Similarity 0–100)."""
    existing_file(source)
    existing_file(target)
    with open_gateway() as gate:
        compared = gate.compare_faces(
            cli_caller(), gate.read_image_file(source), gate.read_image_file(target)
        )
        result = gate.compare_result(*compared)
    print_json(result)


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Known model packs: FaceModelVersion, licence, and whether they are installed."""
    from rich.table import Table

    settings = load_settings()
    packs = face_service(settings).models()
    if as_json:
        print_json(packs)
        return
    table = Table(title="Model packs")
    table.add_column("name", no_wrap=True)
    table.add_column("FaceModelVersion")
    table.add_column("licence")
    table.add_column("commercial use")
    table.add_column("installed")
    table.add_column("verified")
    for pack in packs:
        name = pack["name"] + (" (default)" if pack["default"] else "")
        commercial = (
            "yes"
            if pack["commercial_use"]
            else ("no (accepted)" if pack["licence_accepted"] else "no")
        )
        verified = "yes" if pack["verified"] else ("-" if not pack["installed"] else "FAILED")
        table.add_row(
            name,
            pack["face_model_version"],
            pack["licence"],
            commercial,
            "yes" if pack["installed"] else "no",
            verified,
        )
    console = print_table(table, piped_width=200)
    dirs = ", ".join(str(d) for d in settings.model_dirs)
    console.print(f"Pack folders searched: {dirs}", highlight=False, soft_wrap=True)


@models_app.command("verify")
def models_verify(
    name: Annotated[str | None, typer.Argument(help="One pack (default: every pack).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the SHA-256 of every model file: ok / missing / mismatch.

    Exits 1 when a pack that is installed (or NAME, when given) fails.
    """
    reports = face_service(load_settings()).verify_models(name)
    failed = [r["name"] for r in reports if not r["ok"] and (r["installed"] or name)]
    if as_json:
        print_json(reports)
    else:
        for report in reports:
            if report["ok"]:
                status = "ok"
            elif not report["installed"] and not name:
                status = "not installed (skipped)"
            else:
                status = "FAILED"
            typer.echo(f"{report['name']}: {status}")
            if report["problem"]:
                typer.echo(f"  {report['problem']}")
            for f in report["files"]:
                line = f"  {f['role']:<9} {f['filename']}: {f['status']}"
                if f["status"] == "mismatch":
                    line += f" (sha256 {f['actual_sha256']}, expected {f['expected_sha256']})"
                typer.echo(line)
    if failed:
        echo_err(f"error: verification failed for {', '.join(failed)}")
        raise typer.Exit(1)


@eval_app.command("lfw")
def eval_lfw(
    data: Annotated[Path, typer.Option("--data", help="Folder of LFW images (<Name>/...).")],
    pairs: Annotated[Path, typer.Option("--pairs", help="LFW pairs file (pairs*.txt).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (default: <data_dir>/reports/lfw)."),
    ] = None,
) -> None:
    """Verification accuracy on LFW pairs with the default pack; writes a report."""
    settings = load_settings()
    try:
        from faceledger.evaluation.lfw import run_lfw_eval
    except ImportError as exc:
        if exc.name not in ("faceledger.evaluation", "faceledger.evaluation.lfw"):
            raise
        raise CliError("the LFW evaluation is not available in this installation") from None
    if not data.is_dir():
        raise CliError(f"--data: no such folder: {data}")
    existing_file(pairs)
    out_dir = out if out is not None else settings.data_dir / "reports" / "lfw"
    service = face_service(settings)
    with progress_bar("LFW pairs") as progress:
        result = run_lfw_eval(service.engine, data, pairs, out_dir, progress=progress)
    print_json(result)
    echo_err(f"report written to {out_dir}")


@eval_app.command("search")
def eval_search(
    gallery: Annotated[
        Path, typer.Option("--gallery", help="Photos to enrol: DIR/<person>/*.jpg (largest face).")
    ],
    probes: Annotated[
        Path,
        typer.Option(
            "--probes",
            help="Photos to search with: DIR/<person>/*.jpg; a person without a gallery folder "
            "is not enrolled (non-mated).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (default: <data_dir>/reports/search)."),
    ] = None,
) -> None:
    """Open-set 1:N test of your own gallery: FPIR and FNIR at every threshold, rank-1 rate,
    and the floor the product would choose for a collection of that size; JSON + DET plot."""
    from faceledger.evaluation.search_eval import run_search_eval

    settings = load_settings()
    out_dir = out if out is not None else settings.data_dir / "reports" / "search"
    service = face_service(settings)
    with progress_bar("photos") as progress:
        result = run_search_eval(service.engine, gallery, probes, out_dir, progress=progress)
    summary = {k: v for k, v in result.items() if k != "rates"}
    print_json(summary)
    echo_err(f"report written to {out_dir} (search_report.json, search_report.png)")


# -- the other command modules, registered after this module's own commands (the order in which
# `--help` lists them: commands first, then groups, each in registration order) ----------------
audit.register(app)
backup.register(app)
collection_commands.register(app)
db.register(app)
eval_report.register(eval_app)
keys.register(app)
labels.register(app)
video.register(app)


# -- entry point -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: runs the app and turns every failure into one line.

    Usage errors are reported by Typer itself (exit 2); everything a command raises ends here.
    """
    try:
        app(args=list(argv) if argv is not None else None, prog_name="faceledger")
        code = 0
    except SystemExit as exc:  # Typer's own exits: usage errors (2), Ctrl-C (130), typer.Exit
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            echo_err(str(exc.code))
            code = 1
        if code == 130:
            echo_err("interrupted")
    except FaceLedgerError as exc:
        echo_err(f"error: {exc.code}: {exc.message}")
        code = 2
    except CliError as exc:
        echo_err(f"error: {exc.message}")
        code = exc.exit_code
    except KeyboardInterrupt:
        echo_err("interrupted")
        code = 130
    except Exception as exc:
        echo_err(f"error: InternalError: {type(exc).__name__}: {exc}")
        if os.environ.get("FACELEDGER_LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exc()
        else:
            echo_err("(set FACELEDGER_LOG_LEVEL=DEBUG to see the traceback)")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
