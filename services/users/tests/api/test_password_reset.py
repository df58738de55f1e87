from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from users.settings import UsersSettings

CONTRACTS = Path(__file__).resolve().parents[4] / "contracts" / "events"


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


async def test_reset_email_carries_a_single_use_link_that_sets_the_password(
    identity: Any, mail: Any
) -> None:
    await identity.register("forgot@example.com", full_name="Forgetful Fred")
    old = await identity.login("forgot@example.com")
    await _request_reset(identity, "FORGOT@example.com")

    message = await mail.wait_for("forgot@example.com")
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
    await identity.login("forgot@example.com", "brand-new-pass-2")
    failed = await identity.http.post(
        "/api/v1/auth/login", json={"email": "forgot@example.com", "password": identity.password}
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
    identity: Any, mail: Any
) -> None:
    await _request_reset(identity, "stranger@example.com")
    assert await mail.messages_to("stranger@example.com") == []


async def test_expired_reset_token_is_400(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    await identity.register("slow@example.com")
    await _request_reset(identity, "slow@example.com")
    token = _token_from(await mail.wait_for("slow@example.com"))
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
    await identity.login("slow@example.com")


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


async def test_reset_records_a_password_changed_event(
    identity: Any, mail: Any, settings: UsersSettings
) -> None:
    user = await identity.register("evented@example.com")
    await _request_reset(identity, "evented@example.com")
    token = _token_from(await mail.wait_for("evented@example.com"))
    await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "evented-pass-6"},
    )
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT routing_key, payload FROM outbox ORDER BY occurred_at")
            )
        ).all()
    await engine.dispose()
    keys = [r.routing_key for r in rows]
    assert keys[-2:] == ["users.user_registered.v1", "users.user_password_changed.v1"]
    assert rows[-1].payload["user_id"] == user["id"]
    assert rows[-1].payload["reason"] == "reset"
    # Each payload honours its published contract.
    for row in rows[-2:]:
        name = row.routing_key.split(".", 1)[1]  # user_registered.v1
        schema = json.loads((CONTRACTS / f"{name}.json").read_text())
        jsonschema.validate(row.payload, schema, format_checker=jsonschema.FormatChecker())
