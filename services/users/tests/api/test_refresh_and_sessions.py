from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis


async def test_refresh_rotates_the_pair_and_each_token_works_once(identity: Any) -> None:
    await identity.register("rot@example.com")
    first = await identity.login("rot@example.com")
    response = await identity.refresh(first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await identity.me(second)).status_code == 200


async def test_reused_refresh_token_revokes_family(identity: Any, redis: Redis) -> None:
    await identity.register("thief@example.com")
    login = await identity.login("thief@example.com")
    rotated = (await identity.refresh(login["refresh_token"])).json()

    reuse = await identity.refresh(login["refresh_token"])
    assert reuse.status_code == 401
    assert reuse.json()["type"].endswith("/refresh-token-reused")
    # Every token of that login stops working: the newest refresh token...
    assert (await identity.refresh(rotated["refresh_token"])).status_code == 401
    # ...and the access tokens, here and (through Redis) at the gateway.
    assert (await identity.me(rotated)).status_code == 401
    sessions = await redis.keys("auth:revoked-session:*")
    assert len(sessions) == 1


async def test_reuse_revokes_only_that_family(identity: Any) -> None:
    await identity.register("two@example.com")
    laptop = await identity.login("two@example.com")
    phone = await identity.login("two@example.com")
    await identity.refresh(laptop["refresh_token"])
    await identity.refresh(laptop["refresh_token"])
    assert (await identity.me(phone)).status_code == 200
    assert (await identity.refresh(phone["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_cannot_both_succeed(identity: Any) -> None:
    await identity.register("race@example.com")
    login = await identity.login("race@example.com")
    results = await asyncio.gather(*(identity.refresh(login["refresh_token"]) for _ in range(4)))
    assert sorted(r.status_code for r in results).count(200) <= 1


async def test_unknown_refresh_token_is_401(identity: Any) -> None:
    response = await identity.refresh("not-a-token")
    assert response.status_code == 401
    assert response.json()["type"].endswith("/refresh-token-invalid")


async def test_logout_revokes_the_family_and_its_access_tokens(identity: Any, redis: Redis) -> None:
    await identity.register("bye@example.com")
    pair = await identity.login("bye@example.com")
    response = await identity.http.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
    )
    assert response.status_code == 204
    assert (await identity.refresh(pair["refresh_token"])).status_code == 401
    assert (await identity.me(pair)).status_code == 401
    assert await redis.keys("auth:revoked-session:*")
    # Logging out with an unknown token (of the issued shape) says nothing either way.
    again = await identity.http.post("/api/v1/auth/logout", json={"refresh_token": "A" * 43})
    assert again.status_code == 204


async def test_sessions_lists_one_per_login_and_marks_the_current(identity: Any) -> None:
    await identity.register("multi@example.com")
    laptop = await identity.login("multi@example.com", **{"User-Agent": "laptop/1.0"})
    await identity.login("multi@example.com", **{"User-Agent": "phone/2.0"})
    response = await identity.http.get("/api/v1/auth/sessions", headers=identity.bearer(laptop))
    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 2
    assert {s["user_agent"] for s in sessions} == {"laptop/1.0", "phone/2.0"}
    [current] = [s for s in sessions if s["current"]]
    assert current["user_agent"] == "laptop/1.0"
    assert current["ip"] == "127.0.0.1"
    assert set(current) == {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}


async def test_deleting_a_session_stops_its_tokens(identity: Any) -> None:
    await identity.register("del@example.com")
    laptop = await identity.login("del@example.com")
    phone = await identity.login("del@example.com")
    sessions = (
        await identity.http.get("/api/v1/auth/sessions", headers=identity.bearer(laptop))
    ).json()
    [other] = [s for s in sessions if not s["current"]]
    response = await identity.http.delete(
        f"/api/v1/auth/sessions/{other['id']}", headers=identity.bearer(laptop)
    )
    assert response.status_code == 204
    assert (await identity.me(phone)).status_code == 401
    assert (await identity.refresh(phone["refresh_token"])).status_code == 401
    assert (await identity.me(laptop)).status_code == 200


async def test_deleting_another_users_session_is_404(identity: Any) -> None:
    await identity.register("mine@example.com")
    await identity.register("theirs@example.com")
    mine = await identity.login("mine@example.com")
    theirs = await identity.login("theirs@example.com")
    [their_session] = (
        await identity.http.get("/api/v1/auth/sessions", headers=identity.bearer(theirs))
    ).json()
    response = await identity.http.delete(
        f"/api/v1/auth/sessions/{their_session['id']}", headers=identity.bearer(mine)
    )
    assert response.status_code == 404
    assert (await identity.me(theirs)).status_code == 200
