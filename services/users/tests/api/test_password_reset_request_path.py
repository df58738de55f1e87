"""A reset request does the same database work whether or not the account exists.

The outbox relay is off and no worker runs here (the suite's default), so the
statements captured are the request's own: one outbox row, the reset-email job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from users.settings import UsersSettings


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine of this process sends while the test runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield sent
    event.remove(Engine, "before_cursor_execute", record)


async def _row_counts(settings: UsersSettings) -> dict[str, int]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as conn:
        tables = (
            await conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        counts = {
            name: (
                await conn.execute(sa.select(sa.func.count()).select_from(sa.table(name)))
            ).scalar_one()
            for name in list(tables)
        }
    await engine.dispose()
    return counts


async def test_known_and_unknown_emails_write_one_outbox_row_and_nothing_else(
    identity: Any, settings: UsersSettings, statements: list[str]
) -> None:
    await identity.register("known-reset@example.com")
    work: dict[str, tuple[list[str], dict[str, int]]] = {}
    for email in ("known-reset@example.com", "unknown-reset@example.com"):
        before = await _row_counts(settings)
        statements.clear()
        response = await identity.http.post(
            "/api/v1/auth/password-reset/request", json={"email": email}
        )
        sent = list(statements)
        after = await _row_counts(settings)
        assert response.status_code == 202
        changed = {t: after[t] - before[t] for t in after if after[t] != before[t]}
        work[email] = (sent, changed)

    known, unknown = work["known-reset@example.com"], work["unknown-reset@example.com"]
    assert known == unknown
    assert known[1] == {"outbox": 1}
    assert [s.split()[0:3] for s in known[0] if s.split()[0] in ("INSERT", "UPDATE", "DELETE")] == [
        ["INSERT", "INTO", "outbox"]
    ]
    assert not any("users" in s or "password_reset_tokens" in s for s in known[0])
