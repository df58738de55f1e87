"""Password reset through the app, with its outbox relay and the users worker (in this
event loop) running on the real PostgreSQL, RabbitMQ, Redis and mail sink.

Jobs go to this module's own queue (``jobs_queue``), so no other worker takes them;
every address is unique all the same, as the mail sink is shared by the session.
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
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from users_testkit import query, reset_jobs_run, wait_until

from users.settings import UsersSettings
from users.use_cases.jobs import SEND_PASSWORD_RESET_EMAIL
from users.worker import UsersWorker

CONTRACTS = Path(__file__).resolve().parents[4] / "contracts" / "events"


@pytest.fixture(scope="module")
def settings(settings: UsersSettings) -> UsersSettings:
    return settings.model_copy(update={"run_outbox_relay": True})


@pytest.fixture
async def app(worker: UsersWorker, app: FastAPI) -> FastAPI:
    """The app once the worker consumes (and so has declared) this module's job queue."""
    return app


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
    return await query(settings, sql, **params)


async def _wait_until_handled(settings: UsersSettings, requests: int) -> None:
    """Until the worker has committed ``requests`` reset-email jobs of this database's
    outbox (each job's id is in the inbox, written with its effect), and no more."""
    await wait_until(
        lambda: _handled_at_least(settings, requests), within=15, what=f"{requests} jobs run"
    )
    assert await reset_jobs_run(settings) == requests


async def _handled_at_least(settings: UsersSettings, requests: int) -> bool:
    return await reset_jobs_run(settings) >= requests


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


async def test_reset_records_its_events_each_honouring_its_contract_and_enqueues_its_job(
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
        settings,
        "SELECT id, destination, routing_key, payload, headers FROM outbox ORDER BY occurred_at",
    )
    assert [(r.destination, r.routing_key) for r in rows[-3:]] == [
        ("events", "users.user_registered.v1"),
        ("jobs", settings.jobs_queue),
        ("events", "users.user_password_changed.v1"),
    ]
    registered, job, changed = rows[-3:]
    # The job row is taskiq's message: its id, its kind, the request's email, no token.
    assert job.payload["task_id"] == job.id.hex
    assert job.payload["task_name"] == SEND_PASSWORD_RESET_EMAIL.task_name
    assert job.payload["args"] == []
    assert set(job.payload["kwargs"]) == {"email", "requested_at"}
    assert job.payload["kwargs"]["email"] == email
    assert job.payload["labels"]["max_attempts"] == 14
    assert "x-request-id" in job.payload["labels"]
    assert token not in json.dumps(job.payload)
    assert changed.payload["user_id"] == user["id"]
    assert changed.payload["reason"] == "reset"
    for row in (registered, changed):
        name = row.routing_key.split(".", 1)[1]  # user_registered.v1
        schema = json.loads((CONTRACTS / f"{name}.json").read_text())
        jsonschema.validate(row.payload, schema, format_checker=jsonschema.FormatChecker())
