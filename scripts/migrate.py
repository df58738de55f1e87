"""Create every service's database if missing and bring it to the newest migration.

python scripts/migrate.py            # every service
python scripts/migrate.py users      # one service (users, ops, catalog)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from emporium_kit.database.provisioning import ensure_database

ROOT = Path(__file__).resolve().parents[1]


def database_urls() -> dict[str, str]:
    from catalog.settings import CatalogSettings
    from ops.settings import OpsSettings
    from users.settings import UsersSettings

    return {
        "users": UsersSettings().database_url,
        "ops": OpsSettings().database_url,
        "catalog": CatalogSettings().database_url,
    }


def migrate(service: str, url: str) -> None:
    created = asyncio.run(ensure_database(url))
    config = Config(str(ROOT / "services" / service / "alembic.ini"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
    print(f"{service}: database {'created and ' if created else ''}migrated to head")


def main() -> None:
    urls = database_urls()
    for service in sys.argv[1:] or list(urls):
        migrate(service, urls[service])


if __name__ == "__main__":
    main()
