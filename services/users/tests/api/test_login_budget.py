"""The per-account login budget holds however the guesses arrive."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_concurrent_wrong_passwords_evaluate_at_most_the_budget(identity: Any) -> None:
    await identity.register("besieged@example.com")
    guesses = await asyncio.gather(
        *(
            identity.http.post(
                "/api/v1/auth/login",
                json={"email": "besieged@example.com", "password": f"guess-{n}-pass"},
            )
            for n in range(20)
        )
    )
    assert sorted(g.status_code for g in guesses) == [401] * 5 + [429] * 15
    right = await identity.http.post(
        "/api/v1/auth/login", json={"email": "besieged@example.com", "password": identity.password}
    )
    assert right.status_code == 429
    assert right.json()["type"].endswith("/too-many-login-failures")


async def test_lockout_429_reports_the_account_limit_in_ratelimit_headers(identity: Any) -> None:
    await identity.register("locked@example.com")
    for _ in range(5):
        await identity.http.post(
            "/api/v1/auth/login", json={"email": "locked@example.com", "password": "nope-1234"}
        )
    blocked = await identity.http.post(
        "/api/v1/auth/login", json={"email": "locked@example.com", "password": identity.password}
    )
    assert blocked.status_code == 429
    assert blocked.headers["ratelimit-limit"] == "5"
    assert blocked.headers["ratelimit-remaining"] == "0"
    retry_after = int(blocked.headers["retry-after"])
    assert 890 <= retry_after <= 900
    assert abs(int(blocked.headers["ratelimit-reset"]) - retry_after) <= 1


async def test_a_successful_login_gives_back_the_attempt_it_took(identity: Any) -> None:
    await identity.register("regular@example.com")
    for _ in range(10):
        await identity.login("regular@example.com")
    for _ in range(5):
        response = await identity.http.post(
            "/api/v1/auth/login", json={"email": "regular@example.com", "password": "nope-1234"}
        )
        assert response.status_code == 401
