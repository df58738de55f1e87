"""The gateway's hot path, as one pure ASGI app: each step of a request, in order.

Order matters and is deliberate; each step lives in its own module and the
dispatcher only calls them in turn:

1. route match (:mod:`gateway.routes`): unknown path 404, another method 405 + ``Allow``;
2. authenticate the caller (:mod:`gateway.authentication`): a token is verified
   whenever one is sent; a token with an unknown kid counts as anonymous until
   step 3 lets it by;
3. rate limit on that caller (:mod:`gateway.ratelimit`), so bad tokens still
   spend the IP's budget, with a verified token's revocation check, or an
   anonymous catalogue GET's cache entry, read in the same Redis call
   (:mod:`gateway.redis_turn`): a revoked token spends the IP's budget too;
   then, for an unknown kid only, authenticate again with a JWKS refresh allowed;
4. authorise against the route's rule (:mod:`gateway.access`): 429, 401 / 403
   before any service is called;
5. read and check the body (:mod:`gateway.body`; size and type were the kit's
   BodyGuard);
6. serve from the cache (:mod:`gateway.cache`, anonymous catalogue GETs) or
   forward and stream back (:mod:`gateway.forwarding`).
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.tracing import name_server_span
from gateway import access
from gateway.authentication import Authenticator
from gateway.body import ClientDisconnected, MalformedBody, read_forwarded_body
from gateway.cache import CachedPages, PendingLookup, is_cacheable
from gateway.forwarding import (
    believed_client_ip,
    forward,
    upstream_headers,
    with_rate_limit_headers,
)
from gateway.proxy import Upstream
from gateway.ratelimit import RateLimiter
from gateway.routes import RouteTable, method_not_allowed, not_found

log = structlog.get_logger(__name__)


class GatewayDispatcher:
    def __init__(
        self,
        *,
        table: RouteTable,
        upstreams: Mapping[str, Upstream],
        authenticator: Authenticator,
        limiter: RateLimiter,
        pages: CachedPages,
        client_ips: ClientIpResolver,
    ) -> None:
        self._table = table
        self._upstreams = upstreams
        self._authenticator = authenticator
        self._limiter = limiter
        self._pages = pages
        self._client_ips = client_ips

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._handle(scope, receive, send)
        except ClientDisconnected:
            log.info("client_disconnected", path=scope["path"])

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._table.match(scope["path"])
        if route is None:
            await not_found()(scope, receive, send)
            return
        scope["route"] = route  # the metrics middleware labels by route.path
        method: str = scope["method"]
        name_server_span(method, route.path)
        rule = route.access.get(method)
        if rule is None:
            await method_not_allowed(route, method)(scope, receive, send)
            return

        headers = Headers(scope=scope)
        client_ip = believed_client_ip(self._client_ips, scope, headers)
        authorization = headers.get("authorization")
        # A verified token's revocations are read with its limits, in one round trip.
        caller = await self._authenticator.authenticate(
            authorization, may_fetch_keys=False, check_revocation=False
        )
        # A page for anyone: its cached entry is read with the limits, in one round trip.
        started = self._pages.start(scope) if is_cacheable(route, method, caller) else None
        decision = await self._limiter.check(
            principal=caller.principal,
            client_ip=client_ip,
            auth_route=route.auth_rate_limited,
            entry_suffix=started.suffix if isinstance(started, PendingLookup) else None,
            check_revocation=caller.revocation_pending,
        )
        caller = self._authenticator.settle(caller, decision.revoked)
        if caller.unknown_key and decision.allowed:
            # Charged to the client's IP first: only then may its kid cost a JWKS fetch.
            caller = await self._authenticator.authenticate(authorization)
        rate_limit_headers = decision.headers()
        # Every answer carries the RateLimit lines; a cache hit writes them itself.
        limited_send = with_rate_limit_headers(send, rate_limit_headers)
        refused = access.rate_limited(decision) or access.refusal(rule, caller)
        if refused is not None:
            await refused(scope, receive, limited_send)
            return

        try:
            body = await read_forwarded_body(headers, receive)
        except MalformedBody as malformed:
            await malformed.response()(scope, receive, limited_send)
            return

        upstream = self._upstreams[route.service]
        if started is not None:
            # The upstream's headers are built only on a miss (a hit asks no one).
            await self._pages.serve(
                upstream,
                scope,
                receive,
                send,
                started=started,
                counted=decision.counted,
                headers=lambda: upstream_headers(scope, None, client_ip=client_ip, cacheable=True),
                rate_limit_headers=rate_limit_headers,
            )
            return
        forwarded = upstream_headers(scope, caller.principal, client_ip=client_ip, cacheable=False)
        await forward(upstream, scope, receive, limited_send, headers=forwarded, body=body)
