"""Login budgets through the running gateway: concurrent guesses never exceed them, and a
429 reports the limit that fired."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import extra_gateway


@pytest.fixture(scope="module")
def auth_limited_gateway(system: Any) -> Iterator[str]:
    """A gateway in front of the system's users service with RATE_LIMIT_AUTH at 5/minute."""
    yield from extra_gateway(
        system,
        RATE_LIMIT_AUTH="5/minute",
        RATE_LIMIT_ANONYMOUS="1000/minute",
        GATEWAY_REDIS_KEY_PREFIX=f"e2e:auth5:{uuid.uuid4().hex}:",
    )


async def test_concurrent_guesses_from_one_ip_are_held_to_the_auth_limit(
    auth_limited_gateway: str, shopper: Any
) -> None:
    victim = await shopper("per-ip", login=False)
    async with httpx.AsyncClient(base_url=auth_limited_gateway, timeout=10) as api:
        # Twenty accounts, so the per-account budget never fires: only the IP's does.
        guesses = await asyncio.gather(
            *(
                api.post(
                    "/api/v1/auth/login",
                    json={
                        "email": f"guess-{n}-{uuid.uuid4().hex[:8]}@example.com",
                        "password": "x1",
                    },
                )
                for n in range(20)
            )
        )
        right = await api.post(
            "/api/v1/auth/login", json={"email": victim.email, "password": "e2e-pass-1234"}
        )

    assert sorted(g.status_code for g in guesses) == [401] * 5 + [429] * 15
    assert {g.json()["type"].rsplit("/", 1)[1] for g in guesses if g.status_code == 429} == {
        "rate-limited"
    }
    assert right.status_code == 429
    assert right.json()["type"].endswith("/rate-limited")
    assert right.headers["ratelimit-limit"] == "5"


async def test_concurrent_guesses_at_one_account_evaluate_at_most_its_budget(
    api: httpx.AsyncClient, shopper: Any
) -> None:
    victim = await shopper("per-account", login=False)
    guesses = await asyncio.gather(
        *(
            api.post(
                "/api/v1/auth/login", json={"email": victim.email, "password": f"guess-{n}-pass"}
            )
            for n in range(25)
        )
    )
    right = await api.post(
        "/api/v1/auth/login", json={"email": victim.email, "password": "e2e-pass-1234"}
    )

    assert sorted(g.status_code for g in guesses) == [401] * 5 + [429] * 20
    assert right.status_code == 429
    assert right.json()["type"].endswith("/too-many-login-failures")


async def test_account_lockout_429_carries_the_rate_limit_headers_of_the_account_limit(
    api: httpx.AsyncClient, shopper: Any
) -> None:
    victim = await shopper("lockout-headers", login=False)
    for _ in range(5):
        wrong = await api.post(
            "/api/v1/auth/login", json={"email": victim.email, "password": "wrong-pass-1"}
        )
        assert wrong.status_code == 401
        # Answers the account limit did not decide carry the gateway's numbers.
        assert wrong.headers["ratelimit-limit"] == "100000"
    blocked = await api.post(
        "/api/v1/auth/login", json={"email": victim.email, "password": "e2e-pass-1234"}
    )

    assert blocked.status_code == 429
    assert blocked.json()["type"].endswith("/too-many-login-failures")
    assert blocked.headers.get_list("ratelimit-limit") == ["5"]
    assert blocked.headers.get_list("ratelimit-remaining") == ["0"]
    [reset] = blocked.headers.get_list("ratelimit-reset")
    [retry_after] = blocked.headers.get_list("retry-after")
    assert 890 <= int(retry_after) <= 900
    assert abs(int(reset) - int(retry_after)) <= 1
