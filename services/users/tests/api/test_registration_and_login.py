from __future__ import annotations

from typing import Any

import jwt
import pytest
from jwt.algorithms import OKPAlgorithm


async def test_register_returns_the_user_without_secrets(identity: Any) -> None:
    user = await identity.register("Ada@Example.com", full_name="  Ada Lovelace ")
    assert set(user) == {"id", "email", "full_name", "phone", "roles", "created_at"}
    assert user["email"] == "Ada@example.com"
    assert user["full_name"] == "Ada Lovelace"
    assert user["roles"] == ["customer"]
    assert user["phone"] is None
    assert user["created_at"].endswith("Z")


async def test_register_with_an_existing_email_in_other_case_is_409(identity: Any) -> None:
    await identity.register("grace@example.com")
    response = await identity.http.post(
        "/api/v1/auth/register",
        json={"email": "GRACE@example.COM", "password": "another-pass-1", "full_name": "G"},
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 409
    assert body["type"].endswith("/email-already-registered")
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1", "8 to 128"),
        ("x" * 129 + "1", "128"),
        ("onlyletters", "digit"),
        ("1234567890", "letter"),
    ],
)
async def test_register_enforces_the_password_policy(
    identity: Any, password: str, reason: str
) -> None:
    response = await identity.http.post(
        "/api/v1/auth/register",
        json={"email": "p@example.com", "password": password, "full_name": "P"},
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors[0]["loc"] == ["body", "password"]
    assert any(reason in e["msg"] for e in errors)


async def test_login_returns_a_bearer_pair_signed_with_the_published_key(identity: Any) -> None:
    user = await identity.register("keys@example.com")
    pair = await identity.login("keys@example.com")
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    jwks = (await identity.http.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "EdDSA"
    [jwk] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    claims = jwt.decode(
        pair["access_token"],
        OKPAlgorithm.from_jwk(jwk),
        algorithms=["EdDSA"],
        audience="emporium",
        issuer="emporium-users",
    )
    assert claims["sub"] == user["id"]
    assert claims["roles"] == ["customer"]
    assert claims["perms"] == []
    assert claims["exp"] - claims["iat"] == 900


async def test_wrong_password_and_unknown_email_get_the_same_401(identity: Any) -> None:
    await identity.register("known@example.com")
    wrong = await identity.http.post(
        "/api/v1/auth/login", json={"email": "known@example.com", "password": "wrong-pass-1"}
    )
    unknown = await identity.http.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong-pass-1"}
    )
    assert wrong.status_code == unknown.status_code == 401

    def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != "request_id"}

    assert without_request_id(wrong.json()) == without_request_id(unknown.json())


async def test_login_failures_are_throttled_per_account_with_retry_after(identity: Any) -> None:
    await identity.register("victim@example.com")
    for _ in range(5):
        response = await identity.http.post(
            "/api/v1/auth/login", json={"email": "victim@example.com", "password": "guess-1234"}
        )
        assert response.status_code == 401
    blocked = await identity.http.post(
        "/api/v1/auth/login", json={"email": "VICTIM@example.com", "password": identity.password}
    )
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 900
    assert blocked.json()["type"].endswith("/too-many-login-failures")
    # Another account is not affected.
    await identity.register("bystander@example.com")
    await identity.login("bystander@example.com")


async def test_login_throttle_answers_the_same_for_accounts_that_do_not_exist(
    identity: Any,
) -> None:
    for _ in range(5):
        response = await identity.http.post(
            "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "guess-1234"}
        )
        assert response.status_code == 401
    blocked = await identity.http.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "guess-1234"}
    )
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers


async def test_successful_login_resets_the_failure_budget(identity: Any) -> None:
    await identity.register("forgetful@example.com")
    for _ in range(4):
        await identity.http.post(
            "/api/v1/auth/login", json={"email": "forgetful@example.com", "password": "nope-1234"}
        )
    await identity.login("forgetful@example.com")
    for _ in range(4):
        response = await identity.http.post(
            "/api/v1/auth/login", json={"email": "forgetful@example.com", "password": "nope-1234"}
        )
        assert response.status_code == 401
