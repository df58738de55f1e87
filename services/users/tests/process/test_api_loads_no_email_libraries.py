"""Only the worker sends email: the API process, started and serving a reset request,
never loads the template engine or the SMTP client (about 2 MiB of its RSS budget).

The ports both processes share are built by the API too (``build_ports``); the
kit's email part imports Jinja2 and aiosmtplib only when one is first used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from users.settings import UsersSettings

_PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
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
                print("STATUS:" + str(asked.status_code))

    asyncio.run(main())
    print("LOADED:" + ",".join(sorted(
        name for name in ("jinja2", "aiosmtplib", "markupsafe") if name in sys.modules
    )))
    """
)


def test_the_api_process_serving_a_reset_request_loads_no_email_library(
    settings: UsersSettings,
) -> None:
    env = {
        **os.environ,
        "USERS_DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "USERS_BCRYPT_ROUNDS": "4",
        "USERS_JWT_PRIVATE_KEY_FILE": str(settings.jwt_private_key_file),
        "USERS_RUN_OUTBOX_RELAY": "false",
        "USERS_JOBS_QUEUE": settings.jobs_queue,
        "ADMIN_EMAIL": settings.admin_email,
        "ADMIN_PASSWORD": settings.admin_password.get_secret_value(),
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    assert lines["STATUS"] == "202"  # the reset was asked for: its job is enqueued
    assert lines["LOADED"] == ""
