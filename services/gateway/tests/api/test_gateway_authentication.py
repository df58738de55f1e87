"""Tokens are verified at the gateway; requests that cannot pass never reach a service."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
from gateway_testkit import (
    Gateway,
    GatewayFactory,
    SigningKey,
    TestUpstream,
    Tokens,
    claims_for,
    sign,
)
from redis.asyncio import Redis

ME = "/api/v1/users/me"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _refused(
    gateway: Gateway, upstream: TestUpstream, authorization: str | None
) -> dict[str, object]:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await gateway.client.get(ME, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert upstream.received == []
    body: dict[str, object] = response.json()
    return body


async def test_missing_token_is_401(gateway: Gateway, upstream: TestUpstream) -> None:
    body = await _refused(gateway, upstream, None)
    assert body["detail"] == "This route requires a bearer token."


async def test_malformed_authorization_header_is_401(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    body = await _refused(gateway, upstream, "Token abc.def.ghi")
    assert body["detail"] == "The Authorization header must be 'Bearer <token>'."
    await _refused(gateway, upstream, "Bearer not-a-jwt")


async def test_alg_none_token_is_401(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": tokens.key.kid}).encode())
    payload = _b64(json.dumps(claims_for(permissions=["users:admin"])).encode())

    body = await _refused(gateway, upstream, f"Bearer {header}.{payload}.")
    assert body["detail"] == "The token's algorithm is not accepted."


async def test_hs256_token_signed_with_the_public_key_is_401(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    public_pem = tokens.key.public_pem()
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": tokens.key.kid}).encode())
    payload = _b64(json.dumps(claims_for()).encode())
    import hashlib
    import hmac

    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()

    body = await _refused(gateway, upstream, f"Bearer {header}.{payload}.{_b64(signature)}")
    assert body["detail"] == "The token's algorithm is not accepted."


async def test_expired_token_is_401(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    body = await _refused(gateway, upstream, f"Bearer {tokens.issue(expires_in=-60)}")
    assert body["detail"] == "The token has expired."


async def test_token_with_unknown_kid_is_401(gateway: Gateway, upstream: TestUpstream) -> None:
    stranger = SigningKey.generate()

    body = await _refused(gateway, upstream, f"Bearer {sign(stranger, claims_for())}")
    assert body["detail"] == "The token was signed by an unknown key."


async def test_forged_kids_spend_the_rate_limit_before_they_can_cost_a_jwks_fetch(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async with make_gateway(rate_limit_anonymous="3/minute") as gw:
        upstream.jwks_fetches = 0
        statuses = []
        for _ in range(10):
            forged = sign(SigningKey.generate(), claims_for())
            response = await gw.client.get(ME, headers={"Authorization": f"Bearer {forged}"})
            statuses.append(response.status_code)

    assert statuses == [401] * 3 + [429] * 7
    assert upstream.jwks_fetches <= 3


async def test_token_with_wrong_audience_is_401(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    claims = claims_for()
    claims["aud"] = "someone-else"
    await _refused(gateway, upstream, f"Bearer {sign(tokens.key, claims)}")


async def test_rotated_key_is_accepted_after_jwks_refresh(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    rotated = SigningKey.generate()
    upstream.keys.append(rotated)
    try:
        response = await gateway.client.get(
            ME, headers={"Authorization": f"Bearer {sign(rotated, claims_for())}"}
        )
    finally:
        upstream.keys.remove(rotated)

    assert response.status_code == 200


async def test_revoked_session_is_refused_within_a_second(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens, redis: Redis
) -> None:
    session_id = uuid.uuid4()
    headers = tokens.bearer(session_id=session_id)
    assert (await gateway.client.get(ME, headers=headers)).status_code == 200

    await redis.set(f"auth:revoked-session:{session_id}", b"1", ex=60)
    revoked_at = time.monotonic()
    response = await gateway.client.get(ME, headers=headers)
    elapsed = time.monotonic() - revoked_at

    assert response.status_code == 401
    assert response.json()["detail"] == "The token has been revoked."
    assert elapsed < 1.0
    assert len(upstream.received) == 1


async def test_an_authenticated_request_makes_one_redis_round_trip(
    gateway: Gateway, tokens: Tokens, redis: Redis
) -> None:
    """Its token's revocation keys are read in the script call that counts its
    limits (ADR 0024): one EVALSHA, no MGET of its own, whether it passes or not."""
    from gateway.composition import GATEWAY

    shared = GATEWAY.get(gateway.app).redis
    execute = shared.execute_command
    trips: list[tuple[object, ...]] = []

    async def counted(*args: object, **kw: object) -> object:
        trips.append(args)
        return await execute(*args, **kw)  # type: ignore[arg-type]

    shared.execute_command = counted  # type: ignore[method-assign]
    session_id = uuid.uuid4()
    headers = tokens.bearer(session_id=session_id)
    accepted = await gateway.client.get(ME, headers=headers)
    await redis.set(f"auth:revoked-session:{session_id}", b"1", ex=60)
    refused = await gateway.client.get(ME, headers=headers)

    assert (accepted.status_code, refused.status_code) == (200, 401)
    assert [args[0] for args in trips] == ["EVALSHA", "EVALSHA"]


async def test_token_version_bump_refuses_older_tokens(
    gateway: Gateway, tokens: Tokens, redis: Redis
) -> None:
    user_id = uuid.uuid4()
    old = tokens.bearer(user_id=user_id, version=3)
    current = tokens.bearer(user_id=user_id, version=4)

    await redis.set(f"auth:token-version:{user_id}", b"4", ex=60)

    assert (await gateway.client.get(ME, headers=old)).status_code == 401
    assert (await gateway.client.get(ME, headers=current)).status_code == 200


async def test_missing_permission_is_403_and_not_forwarded(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    response = await gateway.client.get(
        "/api/v1/users", headers=tokens.bearer(permissions=["catalog:write"])
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "This action requires the 'users:admin' permission."
    assert upstream.received == []


async def test_permission_holder_passes(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    response = await gateway.client.put(
        f"/api/v1/users/{uuid.uuid4()}/roles",
        json={"roles": ["staff"]},
        headers=tokens.bearer(permissions=["users:admin"]),
    )

    assert response.status_code == 200
    assert upstream.received[0].method == "PUT"


async def test_invalid_token_on_open_route_is_not_passed_on(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    response = await gateway.client.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": "r"},
        headers={"Authorization": f"Bearer {tokens.issue(expires_in=-60)}"},
    )

    assert response.status_code == 200
    assert upstream.received[0].header("authorization") is None


async def test_revocations_fail_open_without_redis_but_signatures_still_count(
    make_gateway: GatewayFactory, upstream: TestUpstream, tokens: Tokens
) -> None:
    from gateway_testkit import free_port

    async with make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0") as gw:
        accepted = await gw.client.get(ME, headers=tokens.bearer())
        expired = await gw.client.get(ME, headers=tokens.bearer(expires_in=-60))

    assert accepted.status_code == 200
    assert expired.status_code == 401


async def test_revocations_fail_closed_when_configured(
    make_gateway: GatewayFactory, upstream: TestUpstream, tokens: Tokens
) -> None:
    from gateway_testkit import free_port

    async with make_gateway(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", revocation_fail_mode="closed"
    ) as gw:
        response = await gw.client.get(ME, headers=tokens.bearer())

    assert response.status_code == 503
    assert "redis" in response.json()["detail"]
    assert upstream.received == []


def test_pyjwt_refuses_to_sign_hs256_with_an_ed25519_pem_so_the_test_above_forges_by_hand() -> None:
    key = SigningKey.generate()
    try:
        jwt.encode({"a": 1}, key.public_pem(), algorithm="HS256")
    except jwt.InvalidKeyError:
        return
    raise AssertionError("PyJWT accepted an asymmetric key as an HMAC secret")
