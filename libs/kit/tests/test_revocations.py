"""RevocationList: the tokens checked in one event-loop turn share one MGET, each judged alone."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from emporium_kit.identity.revocations import RevocationList
from emporium_kit.identity.tokens import Principal
from emporium_testkit.isolation import redis_url

KIT_REDIS_OFFSET = 3


def _principal(*, token_version: int = 1) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        roles=frozenset({"customer"}),
        permissions=frozenset(),
        token_version=token_version,
        expires_at=2**31,
    )


async def test_the_tokens_of_one_turn_are_one_mget_and_each_judged_on_its_own_keys() -> None:
    redis = Redis.from_url(redis_url(KIT_REDIS_OFFSET), socket_timeout=2)
    revocations = RevocationList(redis, ttl_seconds=60)
    logged_out, demoted, current, renewed = (
        _principal(),
        _principal(token_version=1),
        _principal(),
        _principal(token_version=3),
    )
    mgets = 0
    mget = redis.mget

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal mgets
        mgets += 1
        return await mget(*args, **kwargs)  # type: ignore[arg-type]

    try:
        await revocations.revoke_session(logged_out.session_id)
        await revocations.require_token_version(demoted.user_id, 2)
        await revocations.require_token_version(renewed.user_id, 3)
        redis.mget = counted  # type: ignore[method-assign]

        verdicts = await asyncio.gather(
            *(revocations.is_revoked(p) for p in (logged_out, demoted, current, renewed))
        )
    finally:
        await redis.delete(
            f"auth:revoked-session:{logged_out.session_id}",
            f"auth:token-version:{demoted.user_id}",
            f"auth:token-version:{renewed.user_id}",
        )
        await redis.aclose()

    assert verdicts == [True, True, False, False]
    assert mgets == 1
