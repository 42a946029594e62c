"""CLI verbs for the PostgreSQL schema: ``db upgrade`` and ``db current``.

Both act on ``FACELEDGER_DATABASE_URL`` (or ``--database-url``); the embedded SQLite backend
needs neither (it creates its tables itself). ``upgrade`` is safe to repeat and to run from
several machines at once (one transaction under an advisory lock); servers refuse to start
until it has run. ``faceledger.cli.main`` adds these commands to its app with ``register``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from faceledger.cli.common import CliError, echo_err, load_settings, print_json

db_app = typer.Typer(
    help="The PostgreSQL schema (FACELEDGER_DATABASE_URL): upgrade it, show its revision.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="postgresql://… (default: FACELEDGER_DATABASE_URL).",
        show_default=False,
    ),
]


def _url(database_url: str | None) -> str:
    url = load_settings(database_url=database_url).database_url
    if not url:
        raise CliError(
            "no database: set FACELEDGER_DATABASE_URL=postgresql://… (or --database-url); "
            "the embedded SQLite backend needs no migrations"
        )
    return url


def _connect_error(url: str, exc: Exception) -> CliError:
    from faceledger.store.migrations import describe

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CliError(f"cannot use the database {describe(url)}: {first}")


@db_app.command("upgrade")
def upgrade(
    database_url: UrlOption = None,
    revision: Annotated[str, typer.Option(help="Target revision (default: the newest).")] = "head",
) -> None:
    """Create or upgrade the schema to this release's revision (repeatable, concurrent-safe)."""
    import sqlalchemy.exc

    from faceledger.store import migrations

    url = _url(database_url)
    before = _current(url)
    try:
        migrations.upgrade(url, revision)
    except sqlalchemy.exc.OperationalError as exc:
        raise _connect_error(url, exc.orig or exc) from None
    after = _current(url)
    echo_err(
        f"database {migrations.describe(url)}: "
        + (f"upgraded {before or '(empty)'} → {after}" if before != after else f"at {after}")
    )
    print_json({"database": migrations.describe(url), "before": before, "revision": after})


def _current(url: str) -> str | None:
    import psycopg

    from faceledger.store import migrations

    try:
        return migrations.current(url)
    except psycopg.OperationalError as exc:
        raise _connect_error(url, exc) from None


@db_app.command("current")
def current(database_url: UrlOption = None) -> None:
    """Show the database's schema revision and whether it is this release's head."""
    from faceledger.store import migrations

    url = _url(database_url)
    have = _current(url)
    want = migrations.head()
    print_json(
        {
            "database": migrations.describe(url),
            "revision": have,
            "head": want,
            "at_head": have == want,
        }
    )
    if have != want:
        echo_err("the schema is not at this release's head: run `faceledger db upgrade`")
        raise typer.Exit(1)


#: The tables ``db vacuum`` rewrites: every one that holds biometric data, ids or secrets.
VACUUM_TABLES = (
    "faces",
    "users",
    "tags",
    "policies",
    "request_tokens",
    "access_keys",
    "face_crops",
    "lead_probes",
)


@db_app.command("vacuum")
def vacuum(
    database_url: UrlOption = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="VACUUM FULL: rewrite the tables into new files, so no byte of a deleted row "
            "stays in the database (locks each table while it runs: a maintenance window).",
        ),
    ] = False,
) -> None:
    """VACUUM the tables holding faces, users and keys (servers already do after deletions)."""
    from faceledger.store.migrations import describe, require_head
    from faceledger.store.postgres.faces import PostgresStore

    url = _url(database_url)
    _current(url)  # a clear error when the database cannot be reached
    require_head(url)
    store = PostgresStore(url)
    try:
        store.vacuum(*VACUUM_TABLES, full=full)
    finally:
        store.close()
    echo_err(f"database {describe(url)}: {'VACUUM FULL' if full else 'VACUUM'} done")
    print_json({"database": describe(url), "tables": list(VACUUM_TABLES), "full": full})


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.add_typer(db_app, name="db")
