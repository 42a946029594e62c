"""Fixtures that point the API contract tests at a live server on PostgreSQL.

A test module imports them (``from postgres_live import *``, listed in ``__all__``) to override
the conftest's SQLite-backed ``live_server``, ``api_key``, ``api``… for its own tests, then
imports the contract tests it re-runs. Module-scoped: one server per importing module, on a
fresh database cloned from the session's migrated template.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from conftest import _PG_DATABASES, _create_key, start_live_server

if TYPE_CHECKING:
    import httpx

    from faceledger.config import Settings

__all__ = ["api", "api_key", "auth_headers", "live_server", "live_server_settings", "make_key"]


@pytest.fixture(scope="module")
def live_server_settings(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str, postgres_template: str
) -> Settings:
    """As the conftest's, with ``database_url`` set to a fresh migrated database."""
    import psycopg

    from faceledger.config import Settings

    name = f"faceledger_api_{os.getpid()}_{next(_PG_DATABASES)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    videos = tmp_path_factory.mktemp("pg-server-videos")
    return Settings(
        data_dir=tmp_path_factory.mktemp("pg-server-data"),
        default_threshold_floor=80,
        database_url=postgres_server.replace("/postgres?", f"/{name}?", 1),
        s3_local_buckets={"videos": videos},
        video_dirs=[videos],
    )


@pytest.fixture(scope="module")
def api_key(live_server_settings: Settings) -> tuple[str, str]:
    return _create_key(live_server_settings, "test-admin", ["admin", "enrol", "search"])


@pytest.fixture(scope="module")
def auth_headers(api_key: tuple[str, str]) -> dict[str, str]:
    key_id, secret = api_key
    return {"Authorization": f"Bearer {key_id}:{secret}"}


@pytest.fixture(scope="module")
def make_key(live_server_settings: Settings) -> Callable[[str, list[str]], tuple[str, str]]:
    return lambda principal, roles: _create_key(live_server_settings, principal, roles)


@pytest.fixture(scope="module")
def live_server(live_server_settings: Settings, api_key: tuple[str, str]) -> Iterator[str]:
    with start_live_server(live_server_settings) as url:
        yield url


@pytest.fixture(scope="module")
def api(live_server: str, auth_headers: dict[str, str]) -> Iterator[httpx.Client]:
    import httpx

    with httpx.Client(base_url=live_server, headers=auth_headers, timeout=60) as client:
        yield client
