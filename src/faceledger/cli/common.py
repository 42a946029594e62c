"""What every CLI command module shares: settings, the gateway, the caller, output and errors.

Subcommand modules import from here (never from ``faceledger.cli.main``, which imports them to
register their commands). Heavy modules (the gateway, models, Rich) are imported inside the
functions so that ``faceledger --help`` stays quick.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from faceledger.config import Settings
from faceledger.domain.scale import FLOOR_FROM_POLICY, SearchScale

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from faceledger.domain.audit import Caller
    from faceledger.services.faces import FaceService
    from faceledger.services.gateway import Gateway

ProgressCallback = Callable[[int, int], None]  # progress(done, total)

#: Columns a table is printed in when stdout is not a terminal (Rich would assume 80).
PIPED_WIDTH = 240


class CliError(Exception):
    """A problem worth one line on stderr (``error: <message>``) and an exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def load_settings(**overrides: Any) -> Settings:
    """The environment's ``Settings`` with the non-``None`` ``overrides`` (command options);
    invalid settings become one ``CliError`` listing every problem."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(f"invalid settings (FACELEDGER_* environment): {problems}") from None


def face_service(settings: Settings) -> FaceService:
    """The face service (models, no ledger) for commands that only read packs or evaluate."""
    # Imported here so that `faceledger --help` (and Ctrl-C during start-up) stay quick.
    from faceledger.services.faces import FaceService

    return FaceService(settings)


@contextlib.contextmanager
def open_gateway(settings: Settings | None = None) -> Iterator[Gateway]:
    """The gateway over ``settings`` (default: the environment's), closed after
    (which saves the indexes and signs the ledger's latest records)."""
    from faceledger.services.gateway import Gateway
    from faceledger.services.private_files import make_installation_private

    settings = settings if settings is not None else load_settings()
    make_installation_private(settings)  # an older installation's files made private first
    gate = Gateway(settings)
    try:
        yield gate
    finally:
        gate.close()


def cli_caller(purpose: str | None = None, case_reference: str | None = None) -> Caller:
    """The CLI's caller (the local operator), with a purpose and case reference if given."""
    import dataclasses

    from faceledger.services.gateway import local_operator

    return dataclasses.replace(local_operator(), purpose=purpose, case_reference=case_reference)


@contextlib.contextmanager
def progress_bar(description: str, *, transient: bool = False) -> Iterator[ProgressCallback]:
    """A Rich progress bar on stderr; yields a ``progress(done, total)`` callback. When stderr
    is not a terminal (a log file, CI), plain lines instead: every 10 % and at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if not Console(stderr=True).is_terminal:
        shown = [-1]

        def lines(done: int, total: int) -> None:
            step = done * 10 // max(total, 1)
            if step != shown[0] or done == total:
                shown[0] = step
                typer.echo(f"{description}: {done}/{total}", err=True)

        yield lines
        return

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    ) as bar:
        task = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


def existing_file(path: Path) -> Path:
    """``path``, or a ``CliError`` when it is missing or a directory."""
    if not path.exists():
        raise CliError(f"no such file: {path}")
    if path.is_dir():
        raise CliError(f"{path} is a directory, not an image file")
    return path


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (the result of a command)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(table: Table, *, piped_width: int = PIPED_WIDTH) -> Console:
    """Print ``table`` on stdout; piped, in ``piped_width`` columns (never cells truncated to an
    assumed 80). Returns the console, for lines printed after the table."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=piped_width)
    console.print(table)
    return console


def utc_text(epoch_s: float | None) -> str:
    """``2025-01-31 12:00:00Z`` (a table cell), or ``-`` for None."""
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def echo_err(message: str) -> None:
    """One message line on stderr (progress, notes, errors)."""
    typer.echo(message, err=True)


def scale_lines(scale: SearchScale) -> str:
    """A search's scale for people: size, floor, FPIR, hit rate, per-comparison FMR."""

    def rate(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.2%}" if value >= 1e-4 else f"{value:.1e}"

    floor = (
        f"floor {scale.floor:g} (pinned by the collection's policy)"
        if scale.floor_source == FLOOR_FROM_POLICY
        else f"floor {scale.floor:g} (follows the collection's size)"
    )
    return (
        f"{scale.face_count:,} faces searched; {floor}.\n"
        f"Expected at Similarity ≥ {scale.threshold:g}: searches for someone not enrolled "
        f"with a candidate (FPIR) {rate(scale.fpir)}, up to {rate(scale.fpir_upper)}; "
        f"enrolled people found first {rate(scale.hit_rate)}; per-comparison FMR "
        f"{rate(scale.fmr)}.\n{scale.statement[0].upper()}{scale.statement[1:]}."
    )
