"""Hostile and malformed requests get a 4xx problem document and change nothing."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROUTES_WITH_BODIES = [
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password-reset/request"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
]


async def _user_count(identity: Any) -> int:
    admin = identity.bearer(await identity.admin())
    page = await identity.http.get("/api/v1/users", params={"limit": 100}, headers=admin)
    return len(page.json()["items"])


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(("method", "path"), ROUTES_WITH_BODIES)
async def test_malformed_json_is_400(identity: Any, method: str, path: str) -> None:
    response = await identity.http.request(
        method, path, content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    _assert_problem(response, 400)


@pytest.mark.parametrize(("method", "path"), ROUTES_WITH_BODIES)
async def test_wrong_content_type_is_415(identity: Any, method: str, path: str) -> None:
    response = await identity.http.request(
        method, path, content=b"email=a@b.c", headers={"Content-Type": "text/plain"}
    )
    _assert_problem(response, 415)


@pytest.mark.parametrize(("method", "path"), ROUTES_WITH_BODIES)
async def test_missing_and_wrong_typed_fields_are_422(
    identity: Any, method: str, path: str
) -> None:
    missing = await identity.http.request(method, path, json={})
    body = _assert_problem(missing, 422)
    assert body["errors"]
    assert all("loc" in e and "msg" in e for e in body["errors"])
    wrong = await identity.http.request(method, path, json=[1, 2, 3])
    _assert_problem(wrong, 422)


async def test_oversized_body_is_413_and_creates_nothing(identity: Any) -> None:
    before = await _user_count(identity)
    body = {"email": "big@example.com", "password": "big-pass-1", "full_name": "x" * 2_000_000}
    response = await identity.http.post("/api/v1/auth/register", json=body)
    _assert_problem(response, 413)
    assert await _user_count(identity) == before


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a" * 10_000 + "@example.com", "password": "pass-1234", "full_name": "A"},
        {"email": "nul@example.com", "password": "pass-1234", "full_name": "A\x00B"},
        {"email": "nul\x00@example.com", "password": "pass-1234", "full_name": "A"},
        {"email": "x@example.com", "password": "pass-1234", "full_name": "A", "is_admin": True},
        {"email": "x@example.com", "password": 12345678, "full_name": "A"},
        {"email": "not-an-email", "password": "pass-1234", "full_name": "A"},
        {"email": "x@example.com", "password": "pass-1234", "full_name": ""},
        {"email": "x@example.com", "password": "pass-1234", "full_name": "A" * 201},
    ],
)
async def test_invalid_registrations_are_422_and_create_nothing(
    identity: Any, body: dict[str, Any]
) -> None:
    before = await _user_count(identity)
    response = await identity.http.post("/api/v1/auth/register", json=body)
    _assert_problem(response, 422)
    assert await _user_count(identity) == before


async def test_nul_bytes_and_huge_values_in_login_are_client_errors(identity: Any) -> None:
    for body in (
        {"email": "a\x00@example.com", "password": "x"},
        {"email": "a" * 10_000, "password": "x"},
        {"email": "a@example.com", "password": "x" * 10_000},
    ):
        response = await identity.http.post("/api/v1/auth/login", json=body)
        assert 400 <= response.status_code < 500


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _forgeries(identity: Any) -> dict[str, str]:
    user = await identity.register("target@example.com")
    pair = await identity.login("target@example.com")
    real = pair["access_token"]
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    jwk = (await identity.http.get("/.well-known/jwks.json")).json()["keys"][0]
    raw_public = base64.urlsafe_b64decode(jwk["x"] + "==")
    escalated = {**claims, "roles": ["admin"], "perms": ["users:admin"]}
    none_token = ".".join(
        [
            _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": header["kid"]}).encode()),
            _b64(json.dumps(escalated).encode()),
            "",
        ]
    )
    hs256_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}).encode())
    hs256_payload = _b64(json.dumps(escalated).encode())
    import hashlib
    import hmac

    signature = hmac.new(
        raw_public, f"{hs256_header}.{hs256_payload}".encode(), hashlib.sha256
    ).digest()
    hs256_token = f"{hs256_header}.{hs256_payload}.{_b64(signature)}"
    other_key = Ed25519PrivateKey.generate()
    foreign = jwt.encode(escalated, other_key, algorithm="EdDSA", headers={"kid": header["kid"]})
    expired = jwt.encode(
        {**claims, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 1800},
        other_key,
        algorithm="EdDSA",
        headers={"kid": header["kid"]},
    )
    tampered = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert user["id"] == claims["sub"]
    return {
        "alg none": none_token,
        "HS256 signed with the public key": hs256_token,
        "signed by another key": foreign,
        "expired": expired,
        "tampered signature": tampered,
        "garbage": "not.a.jwt",
        "unknown kid": jwt.encode(escalated, other_key, algorithm="EdDSA", headers={"kid": "x"}),
    }


async def test_forged_tokens_are_401(identity: Any) -> None:
    for name, token in (await _forgeries(identity)).items():
        response = await identity.http.get(
            "/api/v1/users", headers={"Authorization": f"Bearer {token}"}
        )
        body = _assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer", name
        assert body["status"] == 401, name


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "bearer" + "x" * 5000]
)
async def test_malformed_authorization_headers_are_401(identity: Any, header: str) -> None:
    response = await identity.http.get("/api/v1/users/me", headers={"Authorization": header})
    _assert_problem(response, 401)


async def test_bad_path_parameters_are_422_not_500(identity: Any) -> None:
    admin = identity.bearer(await identity.admin())
    response = await identity.http.put(
        "/api/v1/users/not-a-uuid/roles", json={"roles": ["staff"]}, headers=admin
    )
    _assert_problem(response, 422)
    pair = await identity.admin()
    response = await identity.http.delete(
        "/api/v1/auth/sessions/%00", headers=identity.bearer(pair)
    )
    assert 400 <= response.status_code < 500


async def test_request_id_is_echoed_when_valid_and_replaced_when_not(identity: Any) -> None:
    echoed = await identity.http.get("/health/live", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert echoed.headers["x-request-id"] == "abc.DEF-123_x"
    for bad in ("has space", "x" * 129, "semi;colon"):
        replaced = await identity.http.get("/health/live", headers={"X-Request-ID": bad})
        assert replaced.headers["x-request-id"] != bad
        assert len(replaced.headers["x-request-id"]) == 32
