"""Access-token revocations kept in Redis, written by users and read by the gateway.

Access tokens are stateless, so "stop working now" needs a shared list:

* a revoked session (logout, deleted session, refresh-token reuse) is a key
  ``auth:revoked-session:<sid>`` that lives as long as an access token can;
* a role change or password reset bumps the user's token version; the key
  ``auth:token-version:<uid>`` holds the lowest version still accepted.

Both checks are one ``MGET``, shared by every token checked in the same turn
of the event loop (:class:`emporium_kit.batching.TickBatcher`, ADR 0018): two
keys per token, one round trip for the turn. Redis keeps nothing on disk here, so the users
service also checks its database on its own routes (defence in depth).
"""

from __future__ import annotations

from uuid import UUID

from redis.asyncio import Redis

from emporium_kit.batching import TickBatcher
from emporium_kit.identity.tokens import Principal

SESSION_PREFIX = "auth:revoked-session:"
VERSION_PREFIX = "auth:token-version:"


class RevocationList:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        # A revocation only needs to outlive the tokens it refuses.
        self._ttl = ttl_seconds
        self._checks: TickBatcher[Principal, bool] = TickBatcher(self._are_revoked)

    async def revoke_session(self, session_id: UUID) -> None:
        await self._redis.set(f"{SESSION_PREFIX}{session_id}", b"1", ex=self._ttl)

    async def revoke_sessions(self, session_ids: list[UUID]) -> None:
        if not session_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.set(f"{SESSION_PREFIX}{session_id}", b"1", ex=self._ttl)
            await pipe.execute()

    async def require_token_version(self, user_id: UUID, minimum: int) -> None:
        await self._redis.set(f"{VERSION_PREFIX}{user_id}", str(minimum).encode(), ex=self._ttl)

    async def is_revoked(self, principal: Principal) -> bool:
        return await self._checks(principal)

    async def _are_revoked(self, principals: list[Principal]) -> list[bool]:
        keys: list[str] = []
        for principal in principals:
            keys += revocation_keys(principal)
        values = await self._redis.mget(keys)
        return [
            revoked_by(principal, session_flag, minimum)
            for principal, session_flag, minimum in zip(
                principals, values[0::2], values[1::2], strict=True
            )
        ]


def revocation_keys(principal: Principal) -> tuple[str, str]:
    """The two keys that say whether ``principal``'s token is revoked: its
    session's flag and its user's lowest accepted token version."""
    return f"{SESSION_PREFIX}{principal.session_id}", f"{VERSION_PREFIX}{principal.user_id}"


def revoked_by(
    principal: Principal, session_flag: bytes | str | None, minimum: bytes | str | None
) -> bool:
    """The rule, from the values of :func:`revocation_keys` (None: no such key).

    A reader that fetches the keys some other way (the gateway reads them in
    its rate limits' script, ADR 0024) applies the same rule; a test holds it
    to this one."""
    return session_flag is not None or (
        minimum is not None and principal.token_version < int(minimum)
    )
