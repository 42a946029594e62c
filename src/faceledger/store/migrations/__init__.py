"""The PostgreSQL schema's migrations (Alembic), run in code: no ``alembic.ini`` is needed.

``upgrade(url)`` applies every revision up to the head (``faceledger db upgrade``);
``current(url)`` reads the database's revision (``faceledger db current``); ``require_head``
is what a server calls before it serves: a database that is not at the head revision (never
upgraded, or upgraded by an older release) is refused with ``SchemaNotCurrentError``, whose
message says to run ``faceledger db upgrade``.

Revisions live in ``versions/`` (``0001_initial``: collections, faces, users, keys; later
revisions add the ledger). The embedded SQLite backend does not use this: it creates its
tables when it opens its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from faceledger.domain.errors import FaceLedgerError

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
#: ``pg_advisory_xact_lock`` key held while migrations run (two upgrades never interleave).
MIGRATION_LOCK_ID = 0x46_4C_44_42  # "FLDB"


class SchemaNotCurrentError(FaceLedgerError):
    """The database's schema is not the revision this release needs (run the migrations)."""

    code = "SchemaNotCurrent"
    http_status = 503


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` (libpq's form) as SQLAlchemy's URL for psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for this package's scripts and ``url`` (built in code)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    # The URL goes in attributes, not in the ini options (whose interpolation mangles "%").
    config.attributes["url"] = url
    return config


def head() -> str:
    """The newest revision of the scripts shipped with this release."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("postgresql://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migration scripts have {len(heads)} heads: {heads}")
    return str(heads[0])


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (one transaction, under an advisory lock)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision; None when it was never upgraded (no ``alembic_version``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def require_head(url: str) -> None:
    """Refuse (``SchemaNotCurrentError``) a database that is not at this release's head."""
    want = head()
    have = current(url)
    if have != want:
        state = "has no FaceLedger schema" if have is None else f"is at revision {have}"
        raise SchemaNotCurrentError(
            f"the database {describe(url)} {state}; this release needs revision {want}. "
            "Run `faceledger db upgrade` (with the same FACELEDGER_DATABASE_URL) first."
        )


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"{info.get('dbname', '')!r} on {host}{port}"
