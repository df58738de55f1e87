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
from typing import TYPE_CHECKING, Any
from uuid import UUID

import jwt
import structlog
from cachetools import LRUCache
from jwt.algorithms import OKPAlgorithm

if TYPE_CHECKING:
    import httpx

ALGORITHM = "EdDSA"
ISSUER = "emporium-users"
AUDIENCE = "emporium"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "roles", "perms", "ver", "iat", "exp", "jti")

log = structlog.get_logger(__name__)


class InvalidToken(Exception):
    """The bearer token is missing, malformed, forged, expired or revoked."""

    code = "invalid-token"


class UnknownSigningKey(InvalidToken):
    """The token names a key id the verifier does not hold (and did not fetch now)."""


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

    A refresh is single-flight: concurrent requests with unknown kids share one
    lock, and each re-checks the keys inside it, so a refresh that just brought
    the key serves everyone waiting. Refreshes are attempted at most once per
    ``min_refresh_interval``, whether or not they succeed, and the interval
    doubles after each failure (up to ``max_refresh_backoff``), so a flood of
    forged kids cannot turn into a flood of JWKS fetches, nor a users outage
    into a retry storm. A token whose kid is known never waits for the lock.
    """

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        leeway_seconds: int = 5,
        min_refresh_interval: float = 10.0,
        max_refresh_backoff: float = 300.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._leeway = leeway_seconds
        self._min_refresh_interval = min_refresh_interval
        self._max_refresh_backoff = max(min_refresh_interval, max_refresh_backoff)
        self._next_refresh_at = float("-inf")
        self._failed_refreshes = 0
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
        verifier._next_refresh_at = float("inf")
        return verifier

    async def refresh(self) -> None:
        """Fetch the JWKS now (start-up, or a caller that knows the keys changed)."""
        async with self._lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        # The next attempt is scheduled before this one runs, so a failure
        # (or a fetch that hangs until its timeout) counts against the budget.
        self._next_refresh_at = self._clock() + self._min_refresh_interval
        try:
            document = await self._fetch_jwks()
            keys: dict[str, Any] = {}
            for jwk in document.get("keys", []):
                if jwk.get("kty") == "OKP" and jwk.get("kid"):
                    keys[jwk["kid"]] = OKPAlgorithm.from_jwk(jwk)
        except BaseException:
            self._failed_refreshes += 1
            backoff = self._min_refresh_interval * 2.0 ** min(self._failed_refreshes - 1, 16)
            self._next_refresh_at = self._clock() + min(backoff, self._max_refresh_backoff)
            raise
        self._failed_refreshes = 0
        if keys.keys() != self._keys.keys():
            self._verified.clear()  # a retired key stops vouching at once
        self._keys = keys

    def _refresh_due(self) -> bool:
        return self._clock() >= self._next_refresh_at

    async def _key_for(self, kid: str, *, may_refresh: bool) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            return key
        if may_refresh and self._refresh_due():
            async with self._lock:
                # Re-checked inside the lock: the refresh we waited for may have
                # brought the key, or used up this interval's attempt.
                if kid not in self._keys and self._refresh_due():
                    try:
                        await self._refresh_locked()
                    except Exception as exc:
                        log.warning("jwks_refresh_failed", error=repr(exc))
            key = self._keys.get(kid)
        if key is None:
            raise UnknownSigningKey("The token was signed by an unknown key.")
        return key

    async def verify(self, token: str, *, may_refresh: bool = True) -> Principal:
        """The token's principal, or :class:`InvalidToken`.

        ``may_refresh=False`` refuses an unknown kid with :class:`UnknownSigningKey`
        without fetching the JWKS (a caller that must rate-limit first).
        """
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway > time.time():
                return cached
            self._verified.pop(token, None)
            raise InvalidToken("The token has expired.")
        principal = await self._verify_uncached(token, may_refresh=may_refresh)
        self._verified[token] = principal
        return principal

    async def _verify_uncached(self, token: str, *, may_refresh: bool) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is malformed.") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("The token's algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The token names no key.")
        key = await self._key_for(kid, may_refresh=may_refresh)
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
