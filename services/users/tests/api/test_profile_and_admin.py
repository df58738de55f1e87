from __future__ import annotations

from typing import Any


async def test_me_requires_a_bearer_token(identity: Any) -> None:
    response = await identity.http.get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_patch_me_updates_name_and_phone(identity: Any) -> None:
    await identity.register("pat@example.com")
    pair = await identity.login("pat@example.com")
    response = await identity.http.patch(
        "/api/v1/users/me",
        json={"full_name": "Pat Smith", "phone": "+44 20 7946 0958"},
        headers=identity.bearer(pair),
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "Pat Smith"
    assert response.json()["phone"] == "+44 20 7946 0958"
    cleared = await identity.http.patch(
        "/api/v1/users/me", json={"phone": None}, headers=identity.bearer(pair)
    )
    assert cleared.json()["phone"] is None
    assert cleared.json()["full_name"] == "Pat Smith"


async def test_patch_me_refuses_email_roles_and_bad_values(identity: Any) -> None:
    await identity.register("sneaky@example.com")
    pair = await identity.login("sneaky@example.com")
    for body in (
        {"roles": ["admin"]},
        {"email": "x@example.com"},
        {"phone": "call me"},
        {"full_name": None},
    ):
        response = await identity.http.patch(
            "/api/v1/users/me", json=body, headers=identity.bearer(pair)
        )
        assert response.status_code == 422, body
    me = (await identity.me(pair)).json()
    assert me["roles"] == ["customer"]
    assert me["email"] == "sneaky@example.com"


async def test_admin_is_bootstrapped_with_every_role(identity: Any) -> None:
    admin = await identity.admin()
    me = (await identity.me(admin)).json()
    assert me["roles"] == ["admin", "customer", "staff"]


async def test_listing_users_needs_the_users_admin_permission(identity: Any) -> None:
    await identity.register("plain@example.com")
    pair = await identity.login("plain@example.com")
    response = await identity.http.get("/api/v1/users", headers=identity.bearer(pair))
    assert response.status_code == 403
    assert (await identity.http.get("/api/v1/users")).status_code == 401


async def test_admin_pages_through_every_user_once_and_filters_by_email(identity: Any) -> None:
    for i in range(5):
        await identity.register(f"member{i}@example.com")
    admin = identity.bearer(await identity.admin())
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await identity.http.get("/api/v1/users", params=params, headers=admin)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6
    assert seen[0] == "member4@example.com"  # newest first
    found = await identity.http.get(
        "/api/v1/users", params={"email": "MEMBER3@example.com"}, headers=admin
    )
    assert [u["email"] for u in found.json()["items"]] == ["member3@example.com"]


async def test_a_tampered_cursor_is_400(identity: Any) -> None:
    for i in range(3):
        await identity.register(f"c{i}@example.com")
    admin = identity.bearer(await identity.admin())
    page = (await identity.http.get("/api/v1/users", params={"limit": 1}, headers=admin)).json()
    cursor = page["next_cursor"]
    tampered = ("A" if cursor[0] != "A" else "B") + cursor[1:]
    response = await identity.http.get("/api/v1/users", params={"cursor": tampered}, headers=admin)
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-cursor")


async def test_role_change_applies_and_stops_the_users_current_tokens(
    identity: Any, redis: Any
) -> None:
    user = await identity.register("promoted@example.com")
    before = await identity.login("promoted@example.com")
    admin = identity.bearer(await identity.admin())
    response = await identity.http.put(
        f"/api/v1/users/{user['id']}/roles", json={"roles": ["staff"]}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["customer", "staff"]
    assert (await identity.me(before)).status_code == 401
    assert await redis.get(f"auth:token-version:{user['id']}") == b"2"
    # Refreshing yields a token with the new roles and permissions.
    refreshed = (await identity.refresh(before["refresh_token"])).json()
    assert (await identity.me(refreshed)).json()["roles"] == ["customer", "staff"]


async def test_unknown_role_is_422_and_unknown_user_is_404(identity: Any) -> None:
    user = await identity.register("r@example.com")
    admin = identity.bearer(await identity.admin())
    unknown_role = await identity.http.put(
        f"/api/v1/users/{user['id']}/roles", json={"roles": ["wizard"]}, headers=admin
    )
    assert unknown_role.status_code == 422
    missing = await identity.http.put(
        "/api/v1/users/00000000-0000-0000-0000-000000000000/roles",
        json={"roles": ["staff"]},
        headers=admin,
    )
    assert missing.status_code == 404


async def test_the_last_admin_cannot_drop_the_admin_role(identity: Any) -> None:
    admin_pair = await identity.admin()
    me = (await identity.me(admin_pair)).json()
    response = await identity.http.put(
        f"/api/v1/users/{me['id']}/roles",
        json={"roles": ["customer"]},
        headers=identity.bearer(admin_pair),
    )
    assert response.status_code == 409
