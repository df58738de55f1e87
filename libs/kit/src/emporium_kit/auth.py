"""Access-token verification shared by the gateway and every service.

Access tokens are EdDSA (Ed25519) JWTs issued by the users service, with a
``kid`` in the header; the public keys are published as a JWKS. Verifiers
hold only public keys, accept only ``EdDSA`` (so ``alg: none`` and an HS256
token "signed" with the public key are refused) and require every claim below.

Claims: ``iss``, ``aud``, ``sub`` (user id), ``sid`` (session = refresh-token
family), ``roles``, ``perms`` (permissions granted by those roles), ``ver``
(the user's token version, bumped on role change and password reset),
``iat``, ``exp``, ``jti``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import jwt
import structlog
from cachetools import LRUCache
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
ISSUER = "emporium-users"
AUDIENCE = "emporium"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "roles", "perms", "ver", "iat", "exp", "jti")

log = structlog.get_logger(__name__)


class InvalidToken(Exception):
    """The bearer token is missing, malformed, forged, expired or revoked."""

    code = "invalid-token"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    user_id: UUID
    session_id: UUID
    roles: frozenset[str]
    permissions: frozenset[str]
    token_version: int
    expires_at: int

    def has(self, permission: str) -> bool:
        return permission in self.permissions


JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


def http_jwks_fetcher(client: httpx.AsyncClient, url: str) -> JwksFetcher:
    """Fetch the JWKS with a caller's pooled client (its timeouts apply)."""

    async def fetch() -> Mapping[str, Any]:
        response = await client.get(url)
        response.raise_for_status()
        document: Mapping[str, Any] = response.json()
        return document

    return fetch


class TokenVerifier:
    """Verifies access tokens against a JWKS, refreshing it when an unknown kid appears.

    Unknown kids trigger at most one refresh per ``min_refresh_interval`` so a
    flood of forged kids cannot turn into a flood of JWKS fetches.
    """

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        leeway_seconds: int = 5,
        min_refresh_interval: float = 10.0,
        cache_size: int = 10_000,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._keys: dict[str, Any] = {}
        self._leeway = leeway_seconds
        self._min_refresh_interval = min_refresh_interval
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()
        # Verified tokens, keyed by the whole token (signature included, so a
        # forgery can never hit): a client reuses its token for minutes, and
        # verifying an EdDSA signature each time is the costliest step here.
        # Revocation is not cached: callers check it on every request.
        self._verified: LRUCache[str, Principal] = LRUCache(maxsize=max(1, cache_size))

    @classmethod
    def from_keys(cls, keys: Mapping[str, Any]) -> TokenVerifier:
        """A verifier with fixed keys (the users service verifies with its own)."""

        async def fixed() -> Mapping[str, Any]:
            return {"keys": []}

        verifier = cls(fixed, min_refresh_interval=float("inf"))
        verifier._keys = dict(keys)
        verifier._last_refresh = time.monotonic()
        return verifier

    async def refresh(self) -> None:
        async with self._lock:
            document = await self._fetch_jwks()
            keys: dict[str, Any] = {}
            for jwk in document.get("keys", []):
                if jwk.get("kty") == "OKP" and jwk.get("kid"):
                    keys[jwk["kid"]] = OKPAlgorithm.from_jwk(jwk)
            if keys.keys() != self._keys.keys():
                self._verified.clear()  # a retired key stops vouching at once
            self._keys = keys
            self._last_refresh = time.monotonic()

    async def _key_for(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            return key
        if time.monotonic() - self._last_refresh >= self._min_refresh_interval:
            try:
                await self.refresh()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("jwks_refresh_failed", error=repr(exc))
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("The token was signed by an unknown key.")
        return key

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway > time.time():
                return cached
            self._verified.pop(token, None)
            raise InvalidToken("The token has expired.")
        principal = await self._verify_uncached(token)
        self._verified[token] = principal
        return principal

    async def _verify_uncached(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is malformed.") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("The token's algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The token names no key.")
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is invalid.") from exc
        return principal_from_claims(claims)


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    try:
        roles = claims["roles"]
        perms = claims["perms"]
        if not isinstance(roles, list) or not isinstance(perms, list):
            raise TypeError("roles and perms must be lists")
        return Principal(
            user_id=UUID(str(claims["sub"])),
            session_id=UUID(str(claims["sid"])),
            roles=frozenset(str(r) for r in roles),
            permissions=frozenset(str(p) for p in perms),
            token_version=int(claims["ver"]),
            expires_at=int(claims["exp"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidToken("The token's claims are invalid.") from exc


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if absent.

    A header that is present but not a well-formed bearer credential raises.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > 4096:
        raise InvalidToken("The Authorization header must be 'Bearer <token>'.")
    return token
