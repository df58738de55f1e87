"""Alembic environment of the ops service: the kit's (async, URL from the service settings)."""

from __future__ import annotations

from emporium_kit.database.migrations import run_migrations
from ops.adapters.db.tables import metadata
from ops.settings import OpsSettings

run_migrations(metadata, default_url=lambda: OpsSettings().database_url)
