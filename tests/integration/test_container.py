"""The wiring root (``services/container.py``): each backend opened once and injected.

On PostgreSQL a gateway opens one connection pool and runs one schema check, however it is
built (``build_gateway`` or ``Gateway(settings)``), and its face, key and video stores and its
ledger all use that pool. Counted on the real functions against a real migrated database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from faceledger.config import Settings
from faceledger.services.container import build_gateway
from faceledger.services.gateway import Gateway, local_operator
from faceledger.store import migrations


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Every connection pool created and every schema check run from now on."""
    seen: dict[str, list[Any]] = {"pools": [], "checks": []}
    real_init = ConnectionPool.__init__
    real_current = migrations.current

    def pool_init(self: ConnectionPool, *args: Any, **kwargs: Any) -> None:
        seen["pools"].append(self)
        real_init(self, *args, **kwargs)

    def current(url: str) -> str | None:
        seen["checks"].append(url)
        return real_current(url)

    monkeypatch.setattr(ConnectionPool, "__init__", pool_init)
    monkeypatch.setattr(migrations, "current", current)  # what ``require_head`` reads
    return seen


def _use(gate: Gateway) -> None:
    """Go through every backend: the key store, the face store, the video store, the ledger."""
    caller = local_operator()
    gate.create_key(caller, "someone", ["search"])
    assert gate.list_collections(caller)[0] == []
    assert gate.list_stream_processors(caller)[0] == []
    operations = [e.event.operation for e in gate.read_ledger(caller) if e.event is not None]
    assert operations[:3] == ["CreateKey", "ListCollections", "ListStreamProcessors"]


@pytest.mark.parametrize("build", [build_gateway, Gateway], ids=["build_gateway", "Gateway"])
def test_postgres_gateway_opens_one_pool_and_one_schema_check(
    tmp_path: Path,
    migrated_database: str,
    opened: dict[str, list[Any]],
    build: Callable[[Settings], Gateway],
) -> None:
    gate = build(Settings(data_dir=tmp_path / "data", database_url=migrated_database))
    try:
        _use(gate)
        assert len(opened["pools"]) == 1  # before: one per store and the ledger's connections
        assert opened["checks"] == [migrated_database]  # before: one per store
        (pool,) = opened["pools"]
        parts = gate._services
        for store in (parts.collections.store, parts.keys.store, parts.video.store, gate._ledger):
            assert store._pool is pool  # type: ignore[attr-defined]
    finally:
        gate.close()
    assert pool.closed  # closed by the gateway that opened it, once its users are closed


def test_sqlite_gateway_opens_no_pool(tmp_path: Path, opened: dict[str, list[Any]]) -> None:
    gate = build_gateway(Settings(data_dir=tmp_path / "data"))
    try:
        _use(gate)
        assert opened == {"pools": [], "checks": []}
        parts = gate._services
        assert parts.collections.store is parts.backends.stores.faces
        assert parts.keys.store is parts.backends.stores.keys
        assert parts.video.store is parts.backends.stores.video
    finally:
        gate.close()


def _sources() -> list[tuple[str, str]]:
    import faceledger

    root = Path(faceledger.__file__).parent
    return [(str(p.relative_to(root)), p.read_text()) for p in sorted(root.rglob("*.py"))]


def test_no_backend_class_is_tested_outside_the_stores() -> None:
    """A service asks its store what it can do (``database_vectors``, ``shared_secret``)."""
    import re

    check = re.compile(r"isinstance\([^)]*\b(SQLite|Postgres)\w*")
    found = [name for name, text in _sources() if check.search(text)]
    assert [name for name in found if not name.startswith("store/")] == []


def test_services_and_adapters_import_no_backend_module() -> None:
    """Past the wiring root everything is typed by ``store/base.py``'s protocols: the backend
    modules are imported by ``store/`` itself, the PostgreSQL ledger (the stores' pool) and
    the PostgreSQL-only ``faceledger db`` commands."""
    import ast

    allowed = {"audit/postgres.py", "cli/db.py"}
    found = []
    for name, text in _sources():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("faceledger.store.sqlite", "faceledger.store.postgres")
            ):
                found.append(name)
    assert [n for n in found if not n.startswith("store/") and n not in allowed] == []
