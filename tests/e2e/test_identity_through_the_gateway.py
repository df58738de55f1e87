"""The identity promises of the contract, through the running gateway."""

from __future__ import annotations

import asyncio
from copy import copy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx


async def test_register_login_and_me_carry_request_id_and_rate_limit_headers(
    api: httpx.AsyncClient, shopper: Any
) -> None:
    person = await shopper("ada")
    response = await api.get(
        "/api/v1/users/me", headers={**person.auth, "X-Request-ID": "e2e-me-1"}
    )
    assert response.status_code == 200
    assert response.json()["email"] == person.email
    assert response.headers["x-request-id"] == "e2e-me-1"
    assert int(response.headers["ratelimit-limit"]) > 0
    assert "ratelimit-remaining" in response.headers
    assert "server" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


async def test_reused_refresh_token_stops_the_family_at_the_gateway_within_a_second(
    api: httpx.AsyncClient, shopper: Any, eventually: Any
) -> None:
    person = await shopper("reuse")
    first = person.pair
    rotated = await api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    person.pair = rotated.json()
    assert (await person.me()).status_code == 200
    reuse = await api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    refused = await eventually(person.me, 401)
    assert refused.status_code == 401
    again = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": person.pair["refresh_token"]}
    )
    assert again.status_code == 401


async def test_logout_stops_the_access_token_at_the_gateway(
    api: httpx.AsyncClient, shopper: Any, eventually: Any
) -> None:
    person = await shopper("logout")
    response = await api.post(
        "/api/v1/auth/logout", json={"refresh_token": person.pair["refresh_token"]}
    )
    assert response.status_code == 204
    assert (await eventually(person.me, 401)).status_code == 401


async def test_deleted_session_stops_its_token_at_the_gateway(
    api: httpx.AsyncClient, shopper: Any, eventually: Any
) -> None:
    laptop = await shopper("sessions")
    phone = copy(laptop)
    await phone.login()
    sessions = (await api.get("/api/v1/auth/sessions", headers=laptop.auth)).json()
    [other] = [s for s in sessions if not s["current"]]
    deleted = await api.delete(f"/api/v1/auth/sessions/{other['id']}", headers=laptop.auth)
    assert deleted.status_code == 204
    assert (await eventually(phone.me, 401)).status_code == 401
    assert (await laptop.me()).status_code == 200


async def test_password_reset_by_emailed_link_ends_old_sessions(
    api: httpx.AsyncClient, shopper: Any, eventually: Any, system: Any
) -> None:
    person = await shopper("reset")
    response = await api.post(
        "/api/v1/auth/password-reset/request", json={"email": person.email.upper()}
    )
    assert response.status_code == 202

    async with httpx.AsyncClient() as mail:
        for _ in range(100):
            found = (
                await mail.get(
                    f"{system.mail}/api/v1/search", params={"query": f"to:{person.email}"}
                )
            ).json()
            if found["messages"]:
                break
            await asyncio.sleep(0.05)
        message = (
            await mail.get(f"{system.mail}/api/v1/message/{found['messages'][0]['ID']}")
        ).json()
    link = next(word for word in message["Text"].split() if "reset-password?" in word)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://shop.e2e.test/reset-password"
    token = parse_qs(parts.query)["token"][0]

    confirm = await api.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "after-reset-9"},
    )
    assert confirm.status_code == 204
    assert (await eventually(person.me, 401)).status_code == 401
    await person.login("after-reset-9")
    assert (await person.me()).status_code == 200


async def test_role_change_takes_effect_at_the_gateway(
    api: httpx.AsyncClient, shopper: Any, admin: Any, eventually: Any
) -> None:
    person = await shopper("promoted")
    me = (await person.me()).json()
    assert (await api.get("/api/v1/users", headers=person.auth)).status_code == 403
    granted = await api.put(
        f"/api/v1/users/{me['id']}/roles", json={"roles": ["admin"]}, headers=admin.auth
    )
    assert granted.status_code == 200
    assert (await eventually(person.me, 401)).status_code == 401
    refreshed = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": person.pair["refresh_token"]}
    )
    person.pair = refreshed.json()
    listing = await api.get("/api/v1/users", params={"limit": 1}, headers=person.auth)
    assert listing.status_code == 200
    assert set(listing.json()) == {"items", "next_cursor"}


async def test_edge_refusals_are_problem_documents(api: httpx.AsyncClient) -> None:
    cases = [
        (await api.get("/api/v1/users/me"), 401),
        (await api.get("/api/v1/users/me", headers={"Authorization": "Bearer x.y.z"}), 401),
        (await api.get("/api/v1/nowhere"), 404),
        (await api.delete("/api/v1/auth/login"), 405),
        (
            await api.post(
                "/api/v1/auth/login", content=b"a=b", headers={"Content-Type": "text/plain"}
            ),
            415,
        ),
        (
            await api.post(
                "/api/v1/auth/login", content=b"{oops", headers={"Content-Type": "application/json"}
            ),
            400,
        ),
        # orders is not built yet: its routes name it in a 503 problem.
        (await api.post("/api/v1/payments/webhook", json={}), 503),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status
        assert body["request_id"] == response.headers["x-request-id"]
    assert cases[3][0].headers["allow"] == "POST"
