"""The catalogue's bench database: one per catalogue size, migrated, seeded and prewarmed.

``emporium_catalog_bench_100k`` holds the default 100,000 products,
``emporium_catalog_bench_1m`` the 1,000,000 of ``BENCH_CATALOG_PRODUCTS=1000000``:
a size never shares a database with another, and the seed (``make seed``'s
script, idempotent) loads a size once and finds it complete on later runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy.engine import make_url

from bench.run import PYTHON, ROOT

DEFAULT_PRODUCTS = 100_000
DEFAULT_CATALOG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_catalog"


def bench_products() -> int:
    return int(os.environ.get("BENCH_CATALOG_PRODUCTS", str(DEFAULT_PRODUCTS)))


def size_label(products: int) -> str:
    if products % 1_000_000 == 0:
        return f"{products // 1_000_000}m"
    if products % 1_000 == 0:
        return f"{products // 1_000}k"
    return str(products)


def catalog_bench_database_url(products: int) -> str:
    explicit = os.environ.get("BENCH_CATALOG_DATABASE_URL")
    if explicit:
        return explicit
    url = os.environ.get("CATALOG_DATABASE_URL", DEFAULT_CATALOG_URL)
    parts = urlsplit(url)
    name = parts.path.strip("/") or "emporium_catalog"
    return urlunsplit(parts._replace(path=f"/{name}_bench_{size_label(products)}"))


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    products: int
    seed_output: str
    seed_seconds: float


def _run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own argv
        argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
        done.check_returncode()
    return done.stdout.strip()


def migrated(env: dict[str, str], products: int) -> str:
    """The bench database's URL, created and migrated if needed (nothing seeded)."""
    url = catalog_bench_database_url(products)
    _run(
        [PYTHON, str(ROOT / "scripts" / "migrate.py"), "catalog"],
        {**env, "CATALOG_DATABASE_URL": url},
    )
    return url


def prepare(env: dict[str, str], products: int) -> Prepared:
    """Create and migrate the bench database if needed, seed it, prewarm its pages."""
    url = migrated(env, products)
    with_url = {**env, "CATALOG_DATABASE_URL": url}
    print(
        f"catalogue bench database {url.rsplit('/', 1)[-1]}: seeding {products:,} products "
        "if missing (a first load of 1,000,000 takes minutes)",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    output = _run(
        [PYTHON, str(ROOT / "scripts" / "seed_catalog.py"), "--database-url", url,
         "--products", str(products), "--quiet"],
        with_url,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    asyncio.run(prewarm(url))
    return Prepared(url=url, products=products, seed_output=output, seed_seconds=seconds)


async def connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def prewarm(url: str) -> None:
    """Read products, categories and their indexes into shared buffers (this machine
    evicts the page cache), when pg_prewarm is available; else the warm-up runs do it."""
    conn = await connect(url)
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        except asyncpg.PostgresError as exc:
            print(f"pg_prewarm unavailable ({exc}); relying on the warm-up runs", file=sys.stderr)
            return
        await conn.execute(
            """
            SELECT pg_prewarm(c.oid::regclass)
            FROM pg_class c
            WHERE c.relname IN ('products', 'categories')
               OR c.oid IN (SELECT indexrelid FROM pg_index
                            WHERE indrelid IN ('products'::regclass, 'categories'::regclass))
            """
        )
    finally:
        await conn.close()
