"""Creates a service's database when it is missing (used by ``make migrate``).

python -m emporium_kit.database.provisioning postgresql+asyncpg://postgres@127.0.0.1/emporium_users
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from sqlalchemy.engine import make_url


async def ensure_database(url: str) -> bool:
    """Create the database named by ``url`` unless it exists; True if created."""
    parsed = make_url(url)
    name = parsed.database
    if not name:
        raise ValueError("the database URL names no database")
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database="postgres",
        timeout=10,
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def main() -> None:
    for url in sys.argv[1:]:
        created = asyncio.run(ensure_database(url))
        print(f"database {make_url(url).database}: {'created' if created else 'exists'}")


if __name__ == "__main__":
    main()
