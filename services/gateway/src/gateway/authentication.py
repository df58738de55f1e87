"""Authenticating a request: its bearer token verified, then checked against revocations.

The outcome is an :class:`Authentication`: the accepted principal, or why the
token was refused, or that no token was sent. Who may call what is decided from
it later (:mod:`gateway.access`).

Signatures and claims go through the kit's :class:`TokenVerifier` (EdDSA only,
JWKS from the users service, refreshed on an unknown kid). Revocations come
from the kit's :class:`RevocationList` in Redis. With Redis down, the
``revocation_fail_mode`` setting decides (ADR 0003): ``open`` accepts a token
whose signature and expiry verify, logging and counting it; ``closed`` refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import RedisError

from emporium_kit.identity.revocations import RevocationList
from emporium_kit.identity.tokens import (
    InvalidToken,
    Principal,
    TokenVerifier,
    UnknownSigningKey,
    bearer_token,
)
from gateway.metrics import AUTH_FAILURES, REDIS_DEGRADED
from gateway.redis_guard import RedisGuard
from gateway.settings import RevocationFailMode


@dataclass(frozen=True, slots=True)
class Authentication:
    """The outcome of authenticating a request by its Authorization header.

    ``principal`` is set when a token was presented and accepted; ``error``
    when one was presented and refused (the reason goes into the 401).
    """

    principal: Principal | None = None
    error: str | None = None
    presented: bool = False
    unavailable: bool = False
    """The token could not be judged (revocations unreadable, fail mode closed)."""
    unknown_key: bool = False
    """The token names a key the gateway does not hold; looked at without a JWKS fetch."""
    revocation_pending: bool = False
    """The token verified; whether it is revoked is read with its rate limits
    (:meth:`Authenticator.settle` decides once that read came back)."""


ANONYMOUS = Authentication()
"""No token was sent."""


class Authenticator:
    def __init__(
        self,
        verifier: TokenVerifier,
        revocations: RevocationList,
        redis_guard: RedisGuard,
        *,
        fail_mode: RevocationFailMode,
    ) -> None:
        self._verifier = verifier
        self._revocations = revocations
        self._redis_guard = redis_guard
        self._fail_mode = fail_mode

    async def authenticate(
        self,
        authorization: str | None,
        *,
        may_fetch_keys: bool = True,
        check_revocation: bool = True,
    ) -> Authentication:
        """``may_fetch_keys=False``: a token with an unknown kid comes back as
        ``unknown_key`` instead of fetching the JWKS, so the caller can charge the
        client's rate limit before a forged kid can cost a fetch.

        ``check_revocation=False``: a token that verifies comes back with
        ``revocation_pending``; the caller reads its revocation keys some other
        way (the rate limits' script) and passes what it found to :meth:`settle`."""
        if authorization is None:
            return ANONYMOUS
        try:
            token = bearer_token(authorization)
            assert token is not None
            principal = await self._verifier.verify(token, may_refresh=may_fetch_keys)
        except UnknownSigningKey as exc:
            if may_fetch_keys:
                AUTH_FAILURES.labels("invalid").inc()
            return Authentication(error=str(exc), presented=True, unknown_key=not may_fetch_keys)
        except InvalidToken as exc:
            AUTH_FAILURES.labels("invalid").inc()
            return Authentication(error=str(exc), presented=True)
        if not check_revocation:
            return Authentication(principal=principal, presented=True, revocation_pending=True)
        return self._judged(principal, await self._is_revoked(principal))

    def settle(self, caller: Authentication, revoked: bool | None) -> Authentication:
        """A ``revocation_pending`` caller judged by what the rate limits' script read
        (None: it could not be read, so the fail mode decides, as when Redis is down)."""
        if not caller.revocation_pending or caller.principal is None:
            return caller
        if revoked is None:
            revoked = self._unreadable()
        return self._judged(caller.principal, revoked)

    def _judged(self, principal: Principal, revoked: bool | None) -> Authentication:
        if revoked is None:
            AUTH_FAILURES.labels("unverifiable").inc()
            return Authentication(
                error="Token revocations cannot be checked right now.",
                presented=True,
                unavailable=True,
            )
        if revoked:
            AUTH_FAILURES.labels("revoked").inc()
            return Authentication(error="The token has been revoked.", presented=True)
        return Authentication(principal=principal, presented=True)

    async def _is_revoked(self, principal: Principal) -> bool | None:
        """True/False, or None when Redis is down and the fail mode is closed."""
        if self._redis_guard.available:
            try:
                revoked = await self._revocations.is_revoked(principal)
            except (RedisError, OSError) as exc:
                self._redis_guard.failed("revocation", exc)
            else:
                self._redis_guard.succeeded()
                return revoked
        return self._unreadable()

    def _unreadable(self) -> bool | None:
        """The fail mode's answer for a token whose revocations cannot be read."""
        REDIS_DEGRADED.labels("revocation").inc()
        if self._fail_mode == "closed":
            return None
        return False
