"""Publishes revocations to the gateway through the kit's Redis revocation list.

The database is already committed when these run. If Redis is unreachable the
failure is logged and counted rather than turned into an error for the caller:
the session is revoked for good in the database (the users service refuses it
at once, and refresh fails), and the gateway's copy expires with the token.
"""

from __future__ import annotations

from uuid import UUID

import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

from emporium_kit.identity.revocations import RevocationList

log = structlog.get_logger(__name__)

REVOCATIONS_NOT_PROPAGATED = Counter(
    "users_revocations_not_propagated_total",
    "Revocations committed in the database that could not be written to Redis.",
)


class RedisRevocations:
    def __init__(self, revocations: RevocationList) -> None:
        self._list = revocations

    async def revoke_sessions(self, session_ids: list[UUID]) -> None:
        try:
            await self._list.revoke_sessions(session_ids)
        except (RedisError, OSError) as exc:
            REVOCATIONS_NOT_PROPAGATED.inc()
            log.error("revocation_not_propagated", sessions=len(session_ids), error=repr(exc))

    async def require_token_version(self, user_id: UUID, minimum: int) -> None:
        try:
            await self._list.require_token_version(user_id, minimum)
        except (RedisError, OSError) as exc:
            REVOCATIONS_NOT_PROPAGATED.inc()
            log.error("revocation_not_propagated", user_id=str(user_id), error=repr(exc))
