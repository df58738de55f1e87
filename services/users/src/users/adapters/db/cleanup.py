"""The scheduled clean-ups of the users database (run by the worker's periodic jobs)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from emporium_kit.messaging.tables import prune_messaging_tables
from users.adapters.db.tables import inbox, outbox, password_reset_tokens, sessions

# A reset token counts against the hourly email budget for an hour after it was
# issued, so it is kept at least that long even once expired or used.
RESET_BUDGET_WINDOW = timedelta(hours=1)


async def delete_expired_credentials(engine: AsyncEngine, *, now: datetime) -> tuple[int, int]:
    """Delete expired sessions (their refresh-token families go with them) and reset
    tokens past both their expiry and the budget window; returns how many of each."""
    async with engine.begin() as conn:
        expired_sessions = await conn.execute(
            sa.delete(sessions).where(sessions.c.expires_at < now)
        )
        spent_tokens = await conn.execute(
            sa.delete(password_reset_tokens).where(
                password_reset_tokens.c.expires_at < now,
                password_reset_tokens.c.created_at < now - RESET_BUDGET_WINDOW,
            )
        )
    return int(expired_sessions.rowcount), int(spent_tokens.rowcount)


async def prune_outbox_and_inbox(engine: AsyncEngine, *, older_than: timedelta) -> tuple[int, int]:
    """Delete published outbox rows and processed inbox rows older than ``older_than``."""
    async with engine.begin() as conn:
        return await prune_messaging_tables(conn, outbox, inbox, older_than=older_than)
