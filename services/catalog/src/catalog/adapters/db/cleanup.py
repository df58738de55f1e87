"""The scheduled clean-up of the catalogue database (run by the worker's periodic job)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.adapters.db.tables import inbox, outbox
from emporium_kit.messaging.tables import prune_messaging_tables


async def prune_outbox_and_inbox(engine: AsyncEngine, *, older_than: timedelta) -> tuple[int, int]:
    """Delete published outbox rows and processed inbox rows older than ``older_than``."""
    async with engine.begin() as conn:
        return await prune_messaging_tables(conn, outbox, inbox, older_than=older_than)
