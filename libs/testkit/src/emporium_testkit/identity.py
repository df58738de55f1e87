"""Test doubles that behave: a JWKS stand-in for the users service and tokens it vouches for.

Every service that verifies the users service's access tokens (catalog, ops, the
orders service to come) tests against these: a real Ed25519 key with its JWK,
tokens with the users service's claims, and ``/.well-known/jwks.json`` served by a
tiny app on a real uvicorn server (``serve_in_process``) in a thread of its own,
so it answers whether the test is async (the app under test in the test's event
loop) or sync (a real service process under schemathesis).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emporium_testkit.processes import free_port, serve_in_process


class SigningKey:
    """An Ed25519 key like the users service's, with its public JWK."""

    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex[:12]
        self.private_key = Ed25519PrivateKey.generate()

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, alg="EdDSA", use="sig")
        return jwk

    def token(
        self,
        *,
        permissions: Sequence[str] = (),
        roles: Sequence[str] = ("customer",),
        expires_in: int = 900,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": "emporium-users",
            "aud": "emporium",
            "sub": str(uuid.uuid4()),
            "sid": str(uuid.uuid4()),
            "roles": list(roles),
            "perms": list(permissions),
            "ver": 1,
            "iat": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(
        self, *, permissions: Sequence[str] = (), roles: Sequence[str] = ("customer",)
    ) -> dict[str, str]:
        """An ``Authorization`` header with a token of these permissions and roles."""
        return {"Authorization": f"Bearer {self.token(permissions=permissions, roles=roles)}"}

    def customer_headers(self) -> dict[str, str]:
        return self.headers()


class JwksStandIn:
    """Serves ``/.well-known/jwks.json`` with the public keys of ``keys``, as users does."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.port = free_port()
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="jwks-stand-in", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise TimeoutError("the JWKS stand-in did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def _app(self) -> Starlette:
        async def jwks(_: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": [key.jwk() for key in self.keys]})

        return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        async with serve_in_process(self._app(), self.port, log_level="warning"):
            self._started.set()
            await self._stopped.wait()
