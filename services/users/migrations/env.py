"""Alembic environment of the users service: the kit's (async, URL from the service settings)."""

from __future__ import annotations

from emporium_kit.database.migrations import run_migrations
from users.adapters.db.tables import metadata
from users.settings import UsersSettings

run_migrations(metadata, default_url=lambda: UsersSettings().database_url)
