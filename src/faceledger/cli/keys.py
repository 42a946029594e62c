"""CLI verbs for access keys: ``keys create|list|revoke``, and the first-start announcements
that ``serve`` makes (the first admin key, the insecure development mode).

``faceledger.cli.main`` adds these commands to its app with ``register``. A secret is
printed exactly once, by the command that creates it; nothing here logs one. ``create``,
``list`` and ``revoke`` go through the gateway as the local operator (each is a
ledger record); the first admin key that ``serve`` makes is not a request and does not.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceledger.cli.common import (
    cli_caller,
    echo_err,
    load_settings,
    open_gateway,
    print_json,
    print_table,
    utc_text,
)
from faceledger.config import Settings

if TYPE_CHECKING:
    from faceledger.services.keys import AccessKey

logger = logging.getLogger("faceledger.cli")

keys_app = typer.Typer(
    help="Access keys: create (secret shown once), list and revoke.", no_args_is_help=True
)


def endpoint_url(settings: Settings) -> str:
    """The URL a client on this machine would use (a wildcard bind address becomes loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.port}"


def _key_dict(key: AccessKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "principal": key.principal,
        "roles": list(key.roles),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "description": key.description,
        "active": key.active,
        "rate_per_second": key.rate_per_second,  # None: the installation's default
        "burst": key.burst,
    }


def boto3_snippet(settings: Settings, key_id: str, secret: str) -> list[str]:
    """Three lines of Python that make a Rekognition client for this server and key."""
    return [
        "import boto3",
        f'rekognition = boto3.client("rekognition", endpoint_url="{endpoint_url(settings)}", '
        f'region_name="{settings.region}",',
        f'    aws_access_key_id="{key_id}", aws_secret_access_key="{secret}")',
    ]


def _usage_lines(settings: Settings, key_id: str, secret: str) -> list[str]:
    return [
        f"  Access key id:     {key_id}",
        f"  Secret access key: {secret}",
        "",
        "The secret is shown only this once: store it now (it cannot be shown again).",
        "",
        "boto3 / AWS SDKs (Rekognition API):",
        *(f"  {line}" for line in boto3_snippet(settings, key_id, secret)),
        "",
        "Native API (/v1):",
        f"  Authorization: Bearer {key_id}:{secret}",
    ]


@keys_app.command("create")
def create(
    principal: Annotated[
        str, typer.Option("--principal", help="Who holds the key (1–64 of A–Z a–z 0–9 _.@:-).")
    ],
    role: Annotated[
        list[str],
        typer.Option("--role", help="admin, enrol, search, audit or review (repeatable)."),
    ],
    description: Annotated[str, typer.Option("--description", help="A note for `list`.")] = "",
    rate_per_second: Annotated[
        float | None,
        typer.Option(
            "--rate-per-second",
            help="Requests per second for this key (0 = unlimited; default: the installation's).",
        ),
    ] = None,
    burst: Annotated[
        int | None, typer.Option("--burst", help="Requests allowed at once above the rate.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the secret).")] = False,
) -> None:
    """Create an access key for PRINCIPAL; prints its id and secret once."""
    settings = load_settings()
    with open_gateway(settings) as gate:
        key, secret = gate.create_key(
            cli_caller(), principal, role, description, rate_per_second=rate_per_second, burst=burst
        )
    if as_json:
        print_json(
            {
                **_key_dict(key),
                "secret": secret,
                "endpoint_url": endpoint_url(settings),
                "region": settings.region,
            }
        )
        return
    typer.echo(f"Access key created for principal {key.principal!r} ({', '.join(key.roles)}).")
    for line in _usage_lines(settings, key.key_id, secret):
        typer.echo(line)


@keys_app.command("list")
def list_(
    show_all: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Access keys (never their secrets): id, principal, roles, created, revoked."""
    from rich.table import Table

    with open_gateway() as gate:
        keys = gate.list_keys(cli_caller(), include_revoked=show_all)
    if as_json:
        print_json([_key_dict(k) for k in keys])
        return
    table = Table(title="Access keys" + (" (including revoked)" if show_all else ""))
    for column in ("key id", "principal", "roles", "created (UTC)", "revoked (UTC)", "note"):
        table.add_column(column, no_wrap=column == "key id")
    for key in keys:
        table.add_row(
            key.key_id,
            key.principal,
            ", ".join(key.roles),
            utc_text(key.created_at),
            utc_text(key.revoked_at),
            key.description,
        )
    print_table(table, piped_width=200)
    if not keys:
        typer.echo("no access keys" + ("" if show_all else " (add --all to see revoked ones)"))


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Revoke a key: it stays listed (with --all) but never authenticates again."""
    with open_gateway() as gate:
        key = gate.revoke_key(cli_caller(), key_id)
    echo_err(f"revoked access key {key.key_id} of principal {key.principal}")


# -- start-up announcements (called by `serve`) ----------------------------------------------
_INSECURE_WARNING = (
    "=" * 78,
    "INSECURE: FACELEDGER_INSECURE_ACCEPT_ANY_SIGNATURE is on.",
    "INSECURE: any signature (or none) is accepted; every caller is admin.",
    "INSECURE: anyone who can reach this port can read, change and delete every collection.",
    "INSECURE: never use this outside development.",
    "=" * 78,
)


def announce_keys_at_start(settings: Settings) -> None:
    """Before serving: create and show the first admin key if none is active (once, on
    stderr, never through logging), and warn loudly about the insecure development mode."""
    with open_gateway(settings) as gate:  # the key's creation is ledgered
        created = gate.ensure_admin_key()
    if created is not None:
        key, secret = created
        frame = "=" * 78
        echo_err(frame)
        echo_err("FaceLedger created the first admin access key (principal 'admin').")
        echo_err("It will NOT be shown again: store the secret now.")
        echo_err("")
        for line in _usage_lines(settings, key.key_id, secret)[:2]:
            echo_err(line)
        echo_err("")
        for line in boto3_snippet(settings, key.key_id, secret):
            echo_err(f"  {line}")
        echo_err("")
        echo_err("Create keys for people and systems with `faceledger keys create`.")
        echo_err(frame)
    if settings.insecure_accept_any_signature:
        for line in _INSECURE_WARNING:
            logger.warning("%s", line)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (called by ``faceledger.cli.main``)."""
    app.add_typer(keys_app, name="keys")
