"""Only the worker sends email: the API process, started and serving a reset request,
never loads the template engine or the SMTP client (about 2 MiB of its RSS budget).

The ports both processes share are built by the API too (``build_ports``); the
kit's email part imports Jinja2 and aiosmtplib only when one is first used.
"""

from __future__ import annotations

import textwrap

from emporium_testkit.processes import run_probe
from users.settings import UsersSettings

_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx
    from asgi_lifespan import LifespanManager
    from users.main import create_app

    async def main():
        async with LifespanManager(create_app(), startup_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
                asked = await http.post(
                    "/api/v1/auth/password-reset/request", json={"email": "nobody@example.test"}
                )
                return asked.status_code

    status = asyncio.run(main())
    print("PROBE " + json.dumps({
        "status": status,
        "loaded": sorted(m for m in ("jinja2", "aiosmtplib", "markupsafe") if m in sys.modules),
    }))
    """
)


def test_the_api_process_serving_a_reset_request_loads_no_email_library(
    settings: UsersSettings,
) -> None:
    seen = run_probe(
        _PROGRAM,
        USERS_DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        USERS_BCRYPT_ROUNDS="4",
        USERS_JWT_PRIVATE_KEY_FILE=str(settings.jwt_private_key_file),
        USERS_RUN_OUTBOX_RELAY="false",
        USERS_JOBS_QUEUE=settings.jobs_queue,
        ADMIN_EMAIL=settings.admin_email,
        ADMIN_PASSWORD=settings.admin_password.get_secret_value(),
        LOG_LEVEL="WARNING",
    )
    assert seen["status"] == 202  # the reset was asked for: its job is enqueued
    assert seen["loaded"] == []
