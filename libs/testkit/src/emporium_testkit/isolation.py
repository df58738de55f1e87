"""Per-worker isolation on the shared PostgreSQL and Redis.

Each xdist worker gets its own database (``<base>_<worker>``), migrated by
Alembic, and its own Redis database number, so parallel workers never see each
other's rows or keys.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from emporium_kit.database.provisioning import ensure_database

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_HOST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def worker_index() -> int:
    digits = "".join(ch for ch in worker_id() if ch.isdigit())
    return int(digits or 0)


def worker_database_url(base: str) -> str:
    return f"{POSTGRES_URL}/{base}_test_{worker_id()}"


def redis_url(service_offset: int) -> str:
    """A Redis database number of this worker's own (1-15; 0 is left to `make run`)."""
    return f"{REDIS_HOST_URL}/{1 + (service_offset * 4 + worker_index()) % 15}"


def migrate_fresh(url: str, alembic_ini: Path) -> None:
    """Drop and recreate the database, then migrate it to head."""
    asyncio.run(recreate_database(url))
    config = Config(str(alembic_ini))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")


async def recreate_database(url: str) -> None:
    """Drop (if present) and create this worker's test database."""
    parsed = make_url(url)
    name = parsed.database
    if not name or not name.endswith(f"_test_{worker_id()}"):
        raise ValueError(f"refusing to drop {name!r}: not this worker's test database")
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database="postgres"
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    await ensure_database(url)


async def truncate_all(url: str, *, keep: tuple[str, ...] = ()) -> None:
    """Empty every table but ``keep`` (seed data) and Alembic's version table."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        database=parsed.database,
    )
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' AND NOT (tablename = ANY($1::text[]))",
            list(keep),
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await conn.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()
