"""One seam for SQL that both backends run: statements written once with ``%s`` placeholders.

SQLite and PostgreSQL (psycopg) differ here in three ways: placeholders (``?`` / ``%s``), how a
JSON column travels (text / ``jsonb``) and which error a unique key raises. ``Sql`` hides the
three; ``store/sqlite/connections.py`` and ``store/postgres/pool.py`` implement it. Statements
that differ in more than that stay in each backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Result(Protocol):
    """What a statement returns (a DB-API cursor of either driver)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class Connection(Protocol):
    """Runs a statement with ``%s`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result: ...


class Sql(Protocol):
    """A backend's connections: ``transaction`` commits when its block exits without error
    (rolls back otherwise); ``reading`` is for reads outside a transaction."""

    @property
    def unique_violation(self) -> type[Exception]:
        """The error a duplicate unique key raises."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def reading(self) -> AbstractContextManager[Connection]: ...

    def encode_json(self, value: Any) -> Any: ...

    def decode_json(self, value: Any) -> Any: ...
