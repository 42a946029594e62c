"""Alembic's environment for the PostgreSQL schema (run by ``faceledger db upgrade``).

The URL comes from the ``Config`` that ``faceledger.store.migrations`` builds in code
(``config.attributes["url"]``); there is no ``alembic.ini``. Every upgrade runs in one
transaction (PostgreSQL's DDL is transactional) under an advisory lock, so two servers or
operators upgrading at once apply each revision once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from faceledger.store.migrations import MIGRATION_LOCK_ID, sqlalchemy_url

config = context.config


def run_migrations_offline() -> None:
    context.configure(url=sqlalchemy_url(config.attributes["url"]), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(config.attributes["url"]), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=False)
            with context.begin_transaction():
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
