"""The Alembic environment every service's ``migrations/env.py`` runs.

    from emporium_kit.database.migrations import run_migrations
    run_migrations(metadata, default_url=lambda: UsersSettings().database_url)

The URL is the one ``scripts/migrate.py`` (and the tests) put in the Alembic
config's attributes, or else the service's settings. Online migrations run on
an async engine; offline ones print SQL with literal values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def run_migrations(metadata: sa.MetaData, *, default_url: Callable[[], str]) -> None:
    url = context.config.attributes.get("database_url") or default_url()
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def online() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(online())
