"""SIGTERM stops taking work, finishes what is in flight, and exits cleanly."""

from __future__ import annotations

import asyncio
import signal

import httpx

from emporium_testkit.processes import ChildProcess, free_port
from users.settings import UsersSettings


async def test_sigterm_finishes_the_in_flight_request_then_exits(
    settings: UsersSettings,
) -> None:
    port = free_port()
    process = ChildProcess(
        "users",
        env={
            "USERS_PORT": str(port),
            "USERS_DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            # A slow hash keeps the registration in flight while SIGTERM arrives.
            "USERS_BCRYPT_ROUNDS": "14",
            "USERS_JWT_PRIVATE_KEY_FILE": str(settings.jwt_private_key_file),
            "ADMIN_EMAIL": settings.admin_email,
            "ADMIN_PASSWORD": settings.admin_password.get_secret_value(),
            # Jobs it enqueues would go to this module's queue, not `make run`'s.
            "USERS_JOBS_QUEUE": settings.jobs_queue,
            "DEAD_LETTERS_QUEUE": settings.dead_letters_queue,
        },
    )
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(process.wait_until_ready, f"{base}/health/live", 60.0)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            in_flight = asyncio.create_task(
                http.post(
                    "/api/v1/auth/register",
                    json={
                        "email": "last-one@example.com",
                        "password": "finish-me-1",
                        "full_name": "Late",
                    },
                )
            )
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            response = await in_flight
        assert response.status_code == 201
        # Uvicorn re-raises the captured SIGTERM after its graceful shutdown.
        assert await asyncio.to_thread(process.wait, 30) in (0, -signal.SIGTERM)
        output = process.output()
        assert "Application shutdown complete" in output
        assert "Traceback" not in output
    finally:
        process.stop()
