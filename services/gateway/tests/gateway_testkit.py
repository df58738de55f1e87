"""Test doubles that behave: a real upstream HTTP server, signing keys and tokens.

The upstream is a small FastAPI app served by a real uvicorn server on a free
port. It plays users, catalog and orders at once, records every request it
receives (so tests can assert what was, or was not, forwarded) and publishes
the JWKS of keys the tests sign tokens with.

Request headers steer it: ``X-Test-Delay`` (seconds to wait before
answering) and ``X-Test-Status`` (status to answer with).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse, Response

from gateway.settings import GatewaySettings

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CLIENT_IP = "203.0.113.7"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or uuid.uuid4().hex[:12], Ed25519PrivateKey.generate())

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, alg="EdDSA", use="sig")
        return jwk

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims_for(
    *,
    user_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    permissions: Sequence[str] = (),
    roles: Sequence[str] = ("customer",),
    version: int = 1,
    expires_in: int = 900,
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "emporium-users",
        "aud": "emporium",
        "sub": str(user_id or uuid.uuid4()),
        "sid": str(session_id or uuid.uuid4()),
        "roles": list(roles),
        "perms": list(permissions),
        "ver": version,
        "iat": now,
        "exp": now + expires_in,
        "jti": uuid.uuid4().hex,
    }


def sign(key: SigningKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


@dataclass
class Received:
    method: str
    path: str
    raw_path: bytes
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass
class TestUpstream:
    port: int
    keys: list[SigningKey] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    ready_status: int = 200
    jwks_fetches: int = 0
    # What the echo route answers with, besides what a request's X-Test-* headers
    # ask for (cacheable requests reach the upstream without client headers).
    respond_status: int | None = None
    respond_headers: dict[str, str] = field(default_factory=dict)
    # When set, the echo route waits for it, having set ``held`` first.
    hold: asyncio.Event | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)

    __test__ = False  # not a test class, despite the name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.received.clear()
        self.ready_status = 200
        self.jwks_fetches = 0
        self.respond_status = None
        self.respond_headers.clear()
        self.hold = None
        self.held = asyncio.Event()

    def paths(self) -> list[str]:
        return [request.path for request in self.received]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str
    password: str


class UserOut(BaseModel):
    id: str
    email: str
    full_name: str


class ProductOut(BaseModel):
    id: str
    name: str


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None


def upstream_app(state: TestUpstream) -> FastAPI:
    app = FastAPI(title="test upstream", version="1.0")

    async def echo(request: Request) -> Response:
        body = await request.body()
        state.received.append(
            Received(
                method=request.method,
                path=request.url.path,
                raw_path=request.scope.get("raw_path", b""),
                query=request.url.query,
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                body=body,
            )
        )
        if state.hold is not None:
            state.held.set()
            await state.hold.wait()
        delay = request.headers.get("x-test-delay")
        if delay:
            await asyncio.sleep(float(delay))
        status = state.respond_status or int(request.headers.get("x-test-status", "200"))
        payload = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "served": len(state.received),
        }
        return JSONResponse(
            payload,
            status_code=status,
            headers={
                "Server": "test-upstream/1.0",
                "X-Upstream": "yes",
                # X-Private is hop-by-hop by declaration: never passed on.
                "Connection": "x-private",
                "X-Private": "hop",
                **state.respond_headers,
            },
        )

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        state.jwks_fetches += 1
        return {"keys": [key.jwk() for key in state.keys]}

    @app.get("/health/ready")
    async def ready() -> Response:
        return JSONResponse({"status": "ok"}, status_code=state.ready_status)

    @app.get("/api/v1/users/me", responses={200: {"model": UserOut}}, tags=["users"])
    async def me(request: Request) -> Response:
        return await echo(request)

    @app.post("/api/v1/auth/login", responses={200: {"model": UserOut}}, tags=["auth"])
    async def login(request: Request, body: LoginIn) -> Response:
        return await echo(request)

    @app.get("/api/v1/products", responses={200: {"model": ProductPage}}, tags=["catalog"])
    async def products(request: Request) -> Response:
        return await echo(request)

    @app.get("/internal/secret")
    async def secret(request: Request) -> Response:
        return await echo(request)

    @app.api_route(
        "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def anything(request: Request) -> Response:
        return await echo(request)

    return app


async def raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes as they are (no client-side path normalisation) and reads the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Any


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@dataclass
class Tokens:
    key: SigningKey

    def issue(self, **claims: Any) -> str:
        return sign(self.key, claims_for(**claims))

    def bearer(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issue(**claims)}"}


def gateway_settings(upstream: TestUpstream, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "users_url": upstream.url,
        "catalog_url": upstream.url,
        "orders_url": upstream.url,
        "ops_url": upstream.url,
        "redis_url": REDIS_URL,
        "amqp_url": AMQP_URL,
        "redis_key_prefix": f"gw-test-{uuid.uuid4().hex}:",
        "rate_limit_anonymous": "1000/minute",
        "rate_limit_user": "1000/minute",
        "rate_limit_auth": "1000/minute",
        "retry_backoff_seconds": 0.01,
        "upstream_read_timeout_seconds": 2.0,
        "jwks_min_refresh_seconds": 0.0,
        "log_json": False,
    }
    values.update(overrides)
    return GatewaySettings(**values)
