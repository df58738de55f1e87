"""The gateway has no database: its process, started and stopped, never loads a driver for one.

The import-linter contract proves no gateway module imports SQLAlchemy; this
proves it for the running process, where a kit part imported by a package
``__init__``, a tracing instrumentation or a plugin could load it anyway.
"""

from __future__ import annotations

import textwrap
import uuid

from emporium_testkit.processes import run_probe

_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    from asgi_lifespan import LifespanManager
    from gateway.main import app_from_environment

    async def main():
        async with LifespanManager(app_from_environment(), startup_timeout=20):
            pass

    asyncio.run(main())
    loaded = sorted(
        name for name in sys.modules
        if name.split(".")[0] in {"sqlalchemy", "asyncpg", "alembic"}
        or name.startswith("emporium_kit.database")
    )
    print("PROBE " + json.dumps({"loaded": loaded, "aio_pika": "aio_pika" in sys.modules}))
    """
)


def test_a_started_gateway_has_loaded_no_database_library() -> None:
    seen = run_probe(
        _PROGRAM,
        GATEWAY_REDIS_KEY_PREFIX=f"gw-test-{uuid.uuid4().hex}:",
        GATEWAY_USERS_URL="http://127.0.0.1:9",  # nothing there: warm-up fails softly
        LOG_JSON="false",
        LOG_LEVEL="WARNING",
    )
    assert seen["loaded"] == []
    # It did start its parts: the cache listener is on the kit's broker.
    assert seen["aio_pika"] is True
