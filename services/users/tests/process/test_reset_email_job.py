"""The reset mailer in a running users process: a refused email is rolled back and delivered
again, and no log line, even at DEBUG, carries a reset token or link."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import create_async_engine

from emporium_testkit.isolation import truncate_all
from emporium_testkit.processes import ChildProcess, free_port
from users.settings import UsersSettings

PASSWORD = "reset-mailer-pass-1"
LINK = re.compile(r"https://shop\.process\.test/reset-password\?token=[A-Za-z0-9_-]+")


@dataclass
class RefusingFirstDelivery:
    """An SMTP server that refuses (554) the first email to each address in ``refuse``."""

    refuse: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    accepted: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        [to] = envelope.rcpt_tos
        with self.lock:
            if to in self.refuse:
                self.refuse.discard(to)
                self.refused.append(to)
                return "554 5.7.1 refused once for the test"
            message = email.message_from_bytes(
                envelope.original_content, policy=email.policy.default
            )
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            self.accepted.setdefault(to, []).append(body.get_content())
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[RefusingFirstDelivery, int]]:
    handler, port = RefusingFirstDelivery(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
async def users_process(
    settings: UsersSettings, smtp: tuple[RefusingFirstDelivery, int], reset_mailer_queue: str
) -> AsyncIterator[tuple[str, ChildProcess]]:
    await truncate_all(settings.database_url, keep=("roles", "permissions", "role_permissions"))
    port = free_port()
    process = ChildProcess(
        "users",
        env={
            "USERS_PORT": str(port),
            "USERS_DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "USERS_BCRYPT_ROUNDS": "4",
            "USERS_JWT_PRIVATE_KEY_FILE": str(settings.jwt_private_key_file),
            "ADMIN_EMAIL": settings.admin_email,
            "ADMIN_PASSWORD": settings.admin_password.get_secret_value(),
            "SMTP_PORT": str(smtp[1]),
            "PUBLIC_WEB_URL": "https://shop.process.test",
            "USERS_RUN_OUTBOX_RELAY": "true",
            "USERS_RUN_RESET_MAILER": "true",
            "USERS_RESET_MAILER_QUEUE": reset_mailer_queue,
            "LOG_LEVEL": "DEBUG",
            "LOG_JSON": "true",
        },
    )
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(process.wait_until_ready, f"{base}/health/ready", 60.0)
    yield base, process
    process.stop()


async def _reset_link(
    http: httpx.AsyncClient, handler: RefusingFirstDelivery, address: str
) -> tuple[str, str]:
    """Register ``address``, ask for a reset, and return the link and token that arrive."""
    registered = await http.post(
        "/api/v1/auth/register",
        json={"email": address, "password": PASSWORD, "full_name": "Process Pat"},
    )
    assert registered.status_code == 201
    requested = await http.post("/api/v1/auth/password-reset/request", json={"email": address})
    assert requested.status_code == 202
    for _ in range(200):
        if handler.accepted.get(address):
            break
        await asyncio.sleep(0.05)
    [text] = handler.accepted[address]
    [link] = LINK.findall(text)
    [token] = parse_qs(urlsplit(link).query)["token"]
    return link, token


async def test_a_refused_reset_email_is_rolled_back_and_delivered_again(
    users_process: tuple[str, ChildProcess],
    smtp: tuple[RefusingFirstDelivery, int],
    settings: UsersSettings,
) -> None:
    handler, _ = smtp
    base, _ = users_process
    address = f"refused-{uuid.uuid4().hex[:8]}@example.com"
    handler.refuse.add(address)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        _, token = await _reset_link(http, handler, address)
        assert handler.refused == [address]
        engine = create_async_engine(settings.database_url)
        async with engine.connect() as conn:
            tokens = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*) FROM password_reset_tokens t JOIN users u "
                        "ON u.id = t.user_id WHERE u.email = :email"
                    ),
                    {"email": address},
                )
            ).scalar_one()
        await engine.dispose()
        # The refused delivery's token rolled back with it: only the sent one exists.
        assert tokens == 1
        confirmed = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "after-refusal-2"},
        )
        assert confirmed.status_code == 204


async def test_no_log_line_carries_a_reset_token_or_link(
    users_process: tuple[str, ChildProcess], smtp: tuple[RefusingFirstDelivery, int]
) -> None:
    handler, _ = smtp
    base, process = users_process
    address = f"logged-{uuid.uuid4().hex[:8]}@example.com"
    handler.refuse.add(address)  # the failure path logs too
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        link, token = await _reset_link(http, handler, address)
        weak = await http.post(
            "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "weak"}
        )
        assert weak.status_code == 422
        confirmed = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "after-logging-3"},
        )
        assert confirmed.status_code == 204
        reused = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "after-logging-4"},
        )
        assert reused.status_code == 400
    await asyncio.sleep(0.2)  # let the last lines reach the log file

    output = process.output()
    # The logs were captured, at DEBUG, through the refusal and the sending.
    assert '"event":"event_handler_failed"' in output
    assert '"event":"password_reset_email_sent"' in output
    assert '"level":"debug"' in output
    assert token not in output
    assert link not in output
    assert "reset-password?" not in output
