"""Password reset through the app, with its outbox relay and reset mailer running on the real
PostgreSQL, RabbitMQ and mail sink.

Every address is unique: other test runs publish reset requests on the same exchange, and
this module's queue receives them too (their accounts are not in this database).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from users.entrypoints.consumers.reset_mailer import CONSUMER_NAME
from users.settings import UsersSettings

CONTRACTS = Path(__file__).resolve().parents[4] / "contracts" / "events"


@pytest.fixture(scope="module")
def settings(settings: UsersSettings, reset_mailer_queue: str) -> UsersSettings:
    return settings.model_copy(
        update={
            "run_outbox_relay": True,
            "run_reset_mailer": True,
            "reset_mailer_queue": reset_mailer_queue,
        }
    )


def _address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


def _token_from(message: dict[str, Any]) -> str:
    link = next(w for w in message["Text"].split() if "/reset-password?" in w)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://shop.example.test/reset-password"
    )
    [token] = parse_qs(parts.query)["token"]
    return token


async def _request_reset(identity: Any, email: str) -> None:
    response = await identity.http.post(
        "/api/v1/auth/password-reset/request", json={"email": email}
    )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted"}


async def _query(settings: UsersSettings, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as conn:
        rows = list((await conn.execute(sa.text(sql), params)).all())
    await engine.dispose()
    return rows


async def _wait_until_handled(settings: UsersSettings, requests: int) -> None:
    """Until the reset mailer has committed ``requests`` requests of this database's outbox."""
    sql = (
        "SELECT count(*) FROM inbox JOIN outbox ON outbox.id = inbox.message_id "
        "WHERE inbox.consumer = :consumer"
    )
    for _ in range(200):
        [(handled,)] = await _query(settings, sql, consumer=CONSUMER_NAME)
        if handled >= requests:
            assert handled == requests
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the reset mailer handled {handled} of {requests} requests")


async def test_reset_email_carries_a_single_use_link_that_sets_the_password(
    identity: Any, mail: Any
) -> None:
    email = _address("forgot")
    await identity.register(email, full_name="Forgetful Fred")
    old = await identity.login(email)
    await _request_reset(identity, email.upper())

    message = await mail.wait_for(email)
    assert message["Subject"] == "Reset your Emporium password"
    assert "Forgetful Fred" in message["Text"]
    token = _token_from(message)
    assert f"token={token}" in message["HTML"]

    confirm = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "brand-new-pass-2"},
    )
    assert confirm.status_code == 204
    # Every earlier session ends: refresh tokens and access tokens.
    assert (await identity.refresh(old["refresh_token"])).status_code == 401
    assert (await identity.me(old)).status_code == 401
    # The new password works, the old one does not.
    await identity.login(email, "brand-new-pass-2")
    failed = await identity.http.post(
        "/api/v1/auth/login", json={"email": email, "password": identity.password}
    )
    assert failed.status_code == 401
    # The token works once.
    again = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "third-pass-3"},
    )
    assert again.status_code == 400
    assert again.json()["type"].endswith("/reset-token-invalid")


async def test_reset_request_for_an_unknown_email_is_202_and_sends_nothing(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    email = _address("stranger")
    await _request_reset(identity, email)
    await _wait_until_handled(settings, 1)
    assert await mail.messages_to(email) == []
    assert await _query(settings, "SELECT * FROM password_reset_tokens") == []


async def test_confirming_a_reset_token_ends_every_other_reset_token_of_the_user(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    email = _address("twice")
    await identity.register(email)
    await _request_reset(identity, email)
    await _request_reset(identity, email)
    await _wait_until_handled(settings, 2)
    first, second = (_token_from(m) for m in await mail.messages_to(email))

    used = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": second, "new_password": "second-wins-2"},
    )
    assert used.status_code == 204
    other = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": first, "new_password": "first-loses-1"},
    )
    assert other.status_code == 400
    await identity.login(email, "second-wins-2")


async def test_at_most_three_reset_emails_per_account_per_hour_however_they_arrive(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    email = _address("eager")
    await identity.register(email)
    answers = await asyncio.gather(
        *(
            identity.http.post("/api/v1/auth/password-reset/request", json={"email": email})
            for _ in range(8)
        )
    )
    assert [a.status_code for a in answers] == [202] * 8
    await _wait_until_handled(settings, 8)
    assert len(await mail.messages_to(email)) == 3
    [(tokens,)] = await _query(settings, "SELECT count(*) FROM password_reset_tokens")
    assert tokens == 3
    # A later request still answers 202, and still sends nothing.
    await _request_reset(identity, email)
    await _wait_until_handled(settings, 9)
    assert len(await mail.messages_to(email)) == 3


async def test_expired_reset_token_is_400(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    email = _address("slow")
    await identity.register(email)
    await _request_reset(identity, email)
    token = _token_from(await mail.wait_for(email))
    engine = create_async_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE password_reset_tokens SET expires_at = now() - interval '1 second'")
        )
    await engine.dispose()
    response = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "too-late-pass-4"},
    )
    assert response.status_code == 400
    await identity.login(email)


async def test_bad_reset_token_is_400_and_weak_new_password_is_422(identity: Any) -> None:
    bad = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": "forged", "new_password": "valid-pass-5"},
    )
    assert bad.status_code == 400
    weak = await identity.http.post(
        "/api/v1/auth/password-reset/confirm", json={"token": "forged", "new_password": "weak"}
    )
    assert weak.status_code == 422


async def test_reset_records_its_events_each_honouring_its_contract(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    email = _address("evented")
    user = await identity.register(email)
    await _request_reset(identity, email)
    token = _token_from(await mail.wait_for(email))
    await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "evented-pass-6"},
    )
    rows = await _query(
        settings, "SELECT routing_key, payload, headers FROM outbox ORDER BY occurred_at"
    )
    assert [r.routing_key for r in rows[-3:]] == [
        "users.user_registered.v1",
        "users.password_reset_requested.v1",
        "users.user_password_changed.v1",
    ]
    requested = rows[-2]
    assert set(requested.payload) == {"email", "requested_at"}
    assert requested.payload["email"] == email
    assert "x-request-id" in requested.headers
    assert rows[-1].payload["user_id"] == user["id"]
    assert rows[-1].payload["reason"] == "reset"
    for row in rows[-3:]:
        name = row.routing_key.split(".", 1)[1]  # user_registered.v1
        schema = json.loads((CONTRACTS / f"{name}.json").read_text())
        jsonschema.validate(row.payload, schema, format_checker=jsonschema.FormatChecker())
