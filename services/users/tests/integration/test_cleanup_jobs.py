"""The scheduled clean-ups: expired sessions and spent reset tokens, and old published
outbox rows and processed inbox rows, are deleted; everything still in use is kept.

Once through the users worker (the jobs the scheduler sends, run by taskiq in this
event loop), and once calling the adapter directly for the edges and a second run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from users_testkit import wait_until

from emporium_testkit.isolation import truncate_all
from users.adapters.db.cleanup import delete_expired_credentials, prune_outbox_and_inbox
from users.adapters.db.tables import (
    inbox,
    outbox,
    password_reset_tokens,
    refresh_tokens,
    sessions,
    users,
)
from users.settings import UsersSettings
from users.worker import UsersWorker


@dataclass(frozen=True)
class Seeded:
    """What ``_seed`` wrote: the rows each clean-up must delete, and the ones it must keep."""

    expired_session: uuid.UUID
    kept_sessions: frozenset[uuid.UUID]
    spent_tokens: frozenset[bytes]
    window_token: bytes
    live_token: bytes
    old_outbox: uuid.UUID
    kept_outbox: frozenset[uuid.UUID]
    old_inbox: uuid.UUID
    kept_inbox: frozenset[uuid.UUID]


@pytest.fixture
async def engine(settings: UsersSettings) -> AsyncIterator[AsyncEngine]:
    await truncate_all(settings.database_url, keep=("roles", "permissions", "role_permissions"))
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


async def _seed(engine: AsyncEngine, now: datetime) -> Seeded:
    user_id = uuid.uuid4()
    ids = {name: uuid.uuid4() for name in ("expired", "live", "revoked_live")}
    token = {name: os.urandom(32) for name in ("old", "old_used", "in_window", "live")}
    box = {name: uuid.uuid4() for name in ("old", "recent", "old_unpublished", "in", "in_new")}
    days = timedelta(days=1)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(users).values(
                id=user_id,
                email="tidy@example.com",
                email_normalized="tidy@example.com",
                password_hash="x",
                full_name="Tidy",
            )
        )
        await _insert_each(
            conn,
            sessions,
            [
                {
                    "id": ids["expired"],
                    "user_id": user_id,
                    "expires_at": now - timedelta(minutes=1),
                },
                {"id": ids["live"], "user_id": user_id, "expires_at": now + days},
                # Revoked but not expired: kept (its refresh tokens prove reuse until expiry).
                {
                    "id": ids["revoked_live"],
                    "user_id": user_id,
                    "expires_at": now + days,
                    "revoked_at": now,
                },
            ],
        )
        await conn.execute(
            sa.insert(refresh_tokens).values(token_hash=os.urandom(32), session_id=ids["expired"])
        )
        hour = timedelta(hours=1)
        await _insert_each(
            conn,
            password_reset_tokens,
            [
                # Expired and issued over an hour ago: outside the hourly email budget.
                {
                    "token_hash": token["old"],
                    "user_id": user_id,
                    "created_at": now - 2 * hour,
                    "expires_at": now - 1.5 * hour,
                },
                {
                    "token_hash": token["old_used"],
                    "user_id": user_id,
                    "created_at": now - 2 * hour,
                    "expires_at": now - 1.5 * hour,
                    "used_at": now - 1.9 * hour,
                },
                # Expired, but issued within the hour: it still counts against the budget.
                {
                    "token_hash": token["in_window"],
                    "user_id": user_id,
                    "created_at": now - 0.75 * hour,
                    "expires_at": now - 0.25 * hour,
                },
                {
                    "token_hash": token["live"],
                    "user_id": user_id,
                    "created_at": now,
                    "expires_at": now + 0.5 * hour,
                },
            ],
        )
        row = {"routing_key": "users.user_registered.v1", "payload": {}}
        await _insert_each(
            conn,
            outbox,
            [
                {
                    **row,
                    "id": box["old"],
                    "occurred_at": now - 9 * days,
                    "published_at": now - 8 * days,
                },
                {**row, "id": box["recent"], "occurred_at": now - days, "published_at": now - days},
                # Never published (the broker was away for a week): never pruned.
                {**row, "id": box["old_unpublished"], "occurred_at": now - 9 * days},
            ],
        )
        await _insert_each(
            conn,
            inbox,
            [
                {
                    "consumer": "users.send_password_reset_email",
                    "message_id": box["in"],
                    "processed_at": now - 8 * days,
                },
                {
                    "consumer": "users.send_password_reset_email",
                    "message_id": box["in_new"],
                    "processed_at": now - 6 * days,
                },
            ],
        )
    return Seeded(
        expired_session=ids["expired"],
        kept_sessions=frozenset({ids["live"], ids["revoked_live"]}),
        spent_tokens=frozenset({token["old"], token["old_used"]}),
        window_token=token["in_window"],
        live_token=token["live"],
        old_outbox=box["old"],
        kept_outbox=frozenset({box["recent"], box["old_unpublished"]}),
        old_inbox=box["in"],
        kept_inbox=frozenset({box["in_new"]}),
    )


async def _insert_each(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """One INSERT per row: the rows leave different columns to their defaults."""
    for row in rows:
        await conn.execute(sa.insert(table).values(**row))


async def _ids(engine: AsyncEngine, column: sa.Column[object]) -> frozenset[object]:
    async with engine.connect() as conn:
        return frozenset((await conn.execute(sa.select(column))).scalars())


async def _remaining(engine: AsyncEngine) -> dict[str, frozenset[object]]:
    return {
        "sessions": await _ids(engine, sessions.c.id),
        "tokens": await _ids(engine, password_reset_tokens.c.token_hash),
        "outbox": await _ids(engine, outbox.c.id),
        "inbox": await _ids(engine, inbox.c.message_id),
        "refresh_tokens": await _ids(engine, refresh_tokens.c.token_hash),
    }


def _expected(seeded: Seeded) -> dict[str, frozenset[object]]:
    return {
        "sessions": seeded.kept_sessions,
        "tokens": frozenset({seeded.window_token, seeded.live_token}),
        "outbox": seeded.kept_outbox,
        "inbox": seeded.kept_inbox,
        "refresh_tokens": frozenset(),  # the expired session's, deleted with it
    }


def _succeeded(job: str) -> float:
    return REGISTRY.get_sample_value("jobs_succeeded_total", {"job": job}) or 0.0


async def test_the_cleanup_jobs_delete_what_is_spent_and_keep_what_is_in_use(
    engine: AsyncEngine, worker: UsersWorker
) -> None:
    seeded = await _seed(engine, datetime.now(UTC))
    jobs = worker.jobs
    names = (jobs.delete_expired_credentials.task_name, jobs.prune_outbox_and_inbox.task_name)
    before = [_succeeded(name) for name in names]
    # What the scheduler sends each tick (python -m users.scheduler).
    await jobs.delete_expired_credentials.kiq()
    await jobs.prune_outbox_and_inbox.kiq()
    await wait_until(
        lambda: all(_succeeded(n) > b for n, b in zip(names, before, strict=True)),
        what="both clean-up jobs run",
    )
    assert await _remaining(engine) == _expected(seeded)


async def test_the_cleanups_count_what_they_delete_and_a_second_run_finds_nothing(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    seeded = await _seed(engine, now)
    assert await delete_expired_credentials(engine, now=now) == (1, 2)
    assert await prune_outbox_and_inbox(engine, older_than=timedelta(days=7)) == (1, 1)
    assert await _remaining(engine) == _expected(seeded)
    assert await delete_expired_credentials(engine, now=now) == (0, 0)
    assert await prune_outbox_and_inbox(engine, older_than=timedelta(days=7)) == (0, 0)
    # 45 minutes on, the token issued 45 minutes ago has left the budget window too;
    # the live one has expired, but still counts against the budget: kept.
    assert await delete_expired_credentials(engine, now=now + timedelta(minutes=45)) == (0, 1)
    assert await _ids(engine, password_reset_tokens.c.token_hash) == {seeded.live_token}
