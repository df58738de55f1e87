"""Alembic environment of the catalog service: the kit's (async, URL from the service settings)."""

from __future__ import annotations

import catalog.adapters.db.reservations  # noqa: F401  (its tables join the metadata)
from catalog.adapters.db.tables import metadata
from catalog.settings import CatalogSettings
from emporium_kit.database.migrations import run_migrations

run_migrations(metadata, default_url=lambda: CatalogSettings().database_url)
