"""Rate limits: per IP without a token, per user with one, stricter on credential routes."""

from __future__ import annotations

import uuid

from gateway_testkit import Gateway, GatewayFactory, TestUpstream, Tokens, free_port


async def test_anonymous_limit_gives_429_with_retry_after_and_ratelimit_headers(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async with make_gateway(rate_limit_anonymous="3/minute") as gw:
        answers = [
            await gw.client.post("/api/v1/auth/logout", json={"refresh_token": "r"})
            for _ in range(4)
        ]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-limit"] for a in answers] == ["3", "3", "3", "3"]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert 0 < int(answers[0].headers["ratelimit-reset"]) <= 60
    limited = answers[3]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"].endswith("/rate-limited")
    assert "retry-after" not in answers[0].headers
    assert len(upstream.received) == 3


async def test_users_are_limited_per_user_not_per_ip(
    make_gateway: GatewayFactory, tokens: Tokens
) -> None:
    alice, bob = tokens.bearer(user_id=uuid.uuid4()), tokens.bearer(user_id=uuid.uuid4())
    async with make_gateway(rate_limit_user="2/minute", rate_limit_anonymous="100/minute") as gw:
        alice_answers = [
            (await gw.client.get("/api/v1/users/me", headers=alice)).status_code for _ in range(3)
        ]
        bob_answer = await gw.client.get("/api/v1/users/me", headers=bob)
        anonymous = await gw.client.post("/api/v1/auth/logout", json={})

    assert alice_answers == [200, 200, 429]
    assert bob_answer.status_code == 200
    assert bob_answer.headers["ratelimit-limit"] == "2"
    assert anonymous.status_code == 200
    assert anonymous.headers["ratelimit-limit"] == "100"


async def test_anonymous_limit_is_per_client_ip(make_gateway: GatewayFactory) -> None:
    async with make_gateway(rate_limit_anonymous="1/minute", client_ip="198.51.100.1") as one:
        prefix = one.settings.redis_key_prefix
        first = await one.client.post("/api/v1/auth/logout", json={})
        second = await one.client.post("/api/v1/auth/logout", json={})
    async with make_gateway(
        rate_limit_anonymous="1/minute", client_ip="198.51.100.2", redis_key_prefix=prefix
    ) as other:
        other_ip = await other.client.post("/api/v1/auth/logout", json={})

    assert (first.status_code, second.status_code, other_ip.status_code) == (200, 429, 200)


async def test_limits_are_shared_across_replicas_through_redis(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(rate_limit_anonymous="2/minute") as one:
        prefix = one.settings.redis_key_prefix
        await one.client.post("/api/v1/auth/logout", json={})
        async with make_gateway(rate_limit_anonymous="2/minute", redis_key_prefix=prefix) as two:
            second = await two.client.post("/api/v1/auth/logout", json={})
            third = await two.client.post("/api/v1/auth/logout", json={})

    assert (second.status_code, third.status_code) == (200, 429)


async def test_auth_routes_have_their_own_stricter_limit(make_gateway: GatewayFactory) -> None:
    credentials = {"email": "a@example.com", "password": "pw123456"}
    async with make_gateway(rate_limit_auth="2/minute", rate_limit_anonymous="100/minute") as gw:
        logins = [
            (await gw.client.post("/api/v1/auth/login", json=credentials)).status_code
            for _ in range(3)
        ]
        other = await gw.client.post("/api/v1/auth/logout", json={})
        last_login = await gw.client.post("/api/v1/auth/login", json=credentials)

    assert logins == [200, 200, 429]
    assert other.status_code == 200
    assert last_login.headers["ratelimit-limit"] == "2"


async def test_forwarded_client_ip_from_trusted_proxy_is_the_rate_limit_key(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(
        rate_limit_anonymous="1/minute", client_ip="10.0.0.2", trusted_proxies=("10.0.0.0/8",)
    ) as gw:
        first = await gw.client.post(
            "/api/v1/auth/logout", json={}, headers={"X-Forwarded-For": "198.51.100.10"}
        )
        other_client = await gw.client.post(
            "/api/v1/auth/logout", json={}, headers={"X-Forwarded-For": "198.51.100.11"}
        )
        same_client = await gw.client.post(
            "/api/v1/auth/logout", json={}, headers={"X-Forwarded-For": "198.51.100.10"}
        )

    assert (first.status_code, other_client.status_code, same_client.status_code) == (
        200,
        200,
        429,
    )


async def test_every_forwarded_for_line_is_read_so_a_client_line_cannot_pick_the_key(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(
        rate_limit_anonymous="1/minute", client_ip="10.0.0.2", trusted_proxies=("10.0.0.0/8",)
    ) as gw:
        statuses = []
        for forged in ("6.6.6.1", "6.6.6.2"):
            # The client sent its own line first; the trusted proxy added the second.
            response = await gw.client.post(
                "/api/v1/auth/logout",
                json={},
                headers=[("X-Forwarded-For", forged), ("X-Forwarded-For", "198.51.100.30")],
            )
            statuses.append(response.status_code)

    assert statuses == [200, 429]


async def test_ipv6_clients_in_one_64_share_a_budget(make_gateway: GatewayFactory) -> None:
    async with make_gateway(
        rate_limit_anonymous="1/minute", client_ip="::1", trusted_proxies=("::1/128",)
    ) as gw:
        statuses = []
        for client in ("2001:db8:7:7::1", "2001:db8:7:7:dead:beef::2", "2001:db8:7:8::1"):
            response = await gw.client.post(
                "/api/v1/auth/logout", json={}, headers={"X-Forwarded-For": client}
            )
            statuses.append(response.status_code)

    assert statuses == [200, 429, 200]


async def test_spoofed_forwarded_for_from_untrusted_peer_does_not_dodge_the_limit(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(rate_limit_anonymous="1/minute") as gw:
        first = await gw.client.post(
            "/api/v1/auth/logout", json={}, headers={"X-Forwarded-For": "198.51.100.20"}
        )
        spoofed = await gw.client.post(
            "/api/v1/auth/logout", json={}, headers={"X-Forwarded-For": "198.51.100.21"}
        )

    assert (first.status_code, spoofed.status_code) == (200, 429)


async def test_without_redis_limits_fall_back_to_process_memory(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_anonymous="2/minute"
    ) as gw:
        answers = [await gw.client.post("/api/v1/auth/logout", json={}) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-remaining"] == "1"


async def test_every_limit_of_a_request_is_one_script_call_matching_the_library(
    gateway: Gateway,
) -> None:
    """The owned Lua moving window answers as limits' own moving window does."""
    from gateway_testkit import REDIS_URL
    from limits import parse
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter
    from redis.asyncio import Redis

    from gateway.ratelimit import RedisMovingWindow
    from gateway.redis_turn import RedisTurn

    redis = Redis.from_url(REDIS_URL)
    try:
        prefix = f"probe-{uuid.uuid4().hex}:"
        window = RedisMovingWindow(RedisTurn(redis, key_prefix=prefix), key_prefix=prefix)
        reference = MovingWindowRateLimiter(MemoryStorage())
        item, name = parse("5/minute"), uuid.uuid4().hex
        ours = [(await window.hit([("test", item, name)]))[0][0] for _ in range(6)]
        theirs = []
        for _ in range(6):
            allowed = await reference.hit(item, "test", name)
            theirs.append((allowed, await reference.get_window_stats(item, "test", name)))
        # Two limits at once: the second refuses, the first keeps its entry.
        tight, loose = parse("1/minute"), parse("10/minute")
        both, _ = await window.hit([("a", loose, name), ("b", tight, name)])
        again, _ = await window.hit([("a", loose, name), ("b", tight, name)])
        # Redis lost its scripts (a restart, SCRIPT FLUSH): loaded again, silently.
        await redis.script_flush()
        after_flush, _ = await window.hit([("c", item, name)])
    finally:
        await redis.aclose()

    assert [allowed for allowed, _ in ours] == [allowed for allowed, _ in theirs]
    assert [s.remaining for _, s in ours] == [s.remaining for _, s in theirs] == [4, 3, 2, 1, 0, 0]
    assert abs(ours[-1][1].reset_time - theirs[-1][1].reset_time) < 1
    assert [allowed for allowed, _ in both] == [True, True]
    assert [allowed for allowed, _ in again] == [True, False]
    assert again[0][1].remaining == 8
    assert after_flush[0][0] is True


async def test_the_requests_of_one_turn_share_one_script_call_and_are_counted_exactly(
    gateway: Gateway,
) -> None:
    """Twelve requests at once against a limit of five: one EVALSHA, five allowed,
    each told a different remaining count, and a refused second limit still stops
    only its own request."""
    import asyncio

    from gateway_testkit import REDIS_URL
    from limits import parse
    from redis.asyncio import Redis

    from gateway.ratelimit import RedisMovingWindow
    from gateway.redis_turn import RedisTurn

    redis = Redis.from_url(REDIS_URL)
    try:
        prefix = f"probe-{uuid.uuid4().hex}:"
        turn = RedisTurn(redis, key_prefix=prefix)
        window = RedisMovingWindow(turn, key_prefix=prefix)
        calls = 0
        script = turn._script

        async def counted(**kwargs: object) -> object:
            nonlocal calls
            calls += 1
            return await script(**kwargs)

        turn._script = counted  # type: ignore[assignment]
        five, name = parse("5/minute"), uuid.uuid4().hex
        tight, loose = parse("1/minute"), parse("10/minute")
        answers = await asyncio.gather(
            *(window.hit([("burst", five, name)]) for _ in range(12)),
            window.hit([("a", loose, name), ("b", tight, name)]),
            window.hit([("a", loose, name), ("b", tight, name)]),
            window.hit([("a", loose, name)]),
        )
    finally:
        await redis.aclose()

    assert calls == 1
    decided = [checks for checks, _ in answers]
    burst = [checks[0] for checks in decided[:12]]
    assert [allowed for allowed, _ in burst] == [True] * 5 + [False] * 7
    assert [stats.remaining for stats in (s for _, s in burst[:5])] == [4, 3, 2, 1, 0]
    first, second, third = decided[12:]
    assert [allowed for allowed, _ in first] == [True, True]
    assert [allowed for allowed, _ in second] == [True, False]
    assert third[0][0] is True
    assert third[0][1].remaining == 7


async def test_a_revoked_token_spends_its_clients_budget_never_its_users(
    make_gateway: GatewayFactory, tokens: Tokens
) -> None:
    """The token's revocation is read in the same script call as its limits: once
    revoked, the request counts against the client's IP, as one without a token."""
    from gateway_testkit import REDIS_URL
    from redis.asyncio import Redis

    user_id, stolen = uuid.uuid4(), uuid.uuid4()
    revoked = tokens.bearer(user_id=user_id, session_id=stolen)
    current = tokens.bearer(user_id=user_id, session_id=uuid.uuid4())
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.set(f"auth:revoked-session:{stolen}", b"1", ex=60)
        async with make_gateway(rate_limit_user="2/minute", rate_limit_anonymous="3/minute") as gw:
            refused = [await gw.client.get("/api/v1/users/me", headers=revoked) for _ in range(4)]
            own = await gw.client.get("/api/v1/users/me", headers=current)
    finally:
        await redis.delete(f"auth:revoked-session:{stolen}")
        await redis.aclose()

    assert [a.status_code for a in refused] == [401, 401, 401, 429]
    assert refused[0].json()["detail"] == "The token has been revoked."
    assert [a.headers["ratelimit-limit"] for a in refused] == ["3"] * 4
    assert [a.headers["ratelimit-remaining"] for a in refused] == ["2", "1", "0", "0"]
    assert own.status_code == 200
    assert (own.headers["ratelimit-limit"], own.headers["ratelimit-remaining"]) == ("2", "1")


async def test_the_scripts_revocation_rule_is_the_kits(gateway: Gateway) -> None:
    """Every combination of a session flag and a minimum version, read by the turn
    script and by the kit's rule (``revoked_by``), gives the same verdict; a minimum
    that is not a number revokes in the script (never an error for a whole turn)."""
    from gateway_testkit import REDIS_URL
    from limits import parse
    from redis.asyncio import Redis

    from emporium_kit.identity.revocations import revocation_keys, revoked_by
    from emporium_kit.identity.tokens import Principal
    from gateway.ratelimit import RedisMovingWindow
    from gateway.redis_turn import RedisTurn

    def token() -> Principal:
        return Principal(
            user_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            roles=frozenset(),
            permissions=frozenset(),
            token_version=3,
            expires_at=0,
        )

    redis = Redis.from_url(REDIS_URL)
    prefix = f"probe-{uuid.uuid4().hex}:"
    window = RedisMovingWindow(RedisTurn(redis, key_prefix=prefix), key_prefix=prefix)
    user, anonymous = parse("100/minute"), parse("100/minute")
    verdicts: list[tuple[bool, bool]] = []
    try:
        for flagged in (False, True):
            for minimum in (None, b"2", b"3", b"4"):
                principal = token()
                session_key, version_key = revocation_keys(principal)
                if flagged:
                    await redis.set(session_key, b"1", ex=60)
                if minimum is not None:
                    await redis.set(version_key, minimum, ex=60)
                _, counted = await window.hit(
                    [("user", user, str(principal.user_id))],
                    token=principal,
                    revoked_checks=[("anonymous", anonymous, "ip")],
                )
                verdicts.append(
                    (counted.revoked, revoked_by(principal, b"1" if flagged else None, minimum))
                )
        junk = token()
        junk_keys = revocation_keys(junk)
        await redis.set(junk_keys[1], b"three", ex=60)
        _, counted_junk = await window.hit(
            [("user", user, str(junk.user_id))],
            token=junk,
            revoked_checks=[("anonymous", anonymous, "ip")],
        )
    finally:
        await redis.aclose()

    assert [ours for ours, _ in verdicts] == [kits for _, kits in verdicts]
    assert [ours for ours, _ in verdicts] == [False, False, False, True, True, True, True, True]
    assert counted_junk.revoked is True
