"""The last admin survives concurrent demotions, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from users.domain.errors import LastAdminRemoval
from users.entrypoints.http.components import USERS
from users.settings import UsersSettings
from users.use_cases.change_roles import change_roles


async def _admins(settings: UsersSettings) -> list[str]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT u.email FROM users u JOIN user_roles r ON r.user_id = u.id "
                "WHERE r.role = 'admin' ORDER BY u.email"
            )
        )
        emails = list(rows.scalars())
    await engine.dispose()
    return emails


async def test_two_concurrent_demotions_of_the_last_two_admins_leave_one(
    app: FastAPI, identity: Any, settings: UsersSettings
) -> None:
    ports = USERS.get(app).ports
    admin = await identity.admin()
    root = UUID((await identity.me(admin)).json()["id"])
    other = UUID((await identity.register("second-admin@example.com"))["id"])
    for _ in range(5):
        await change_roles(ports, other, ["admin"])
        await change_roles(ports, root, ["admin", "staff"])
        outcomes = await asyncio.gather(
            change_roles(ports, root, ["customer"]),
            change_roles(ports, other, ["customer"]),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, LastAdminRemoval)]
        assert len(refused) == 1, outcomes
        assert len(await _admins(settings)) == 1
