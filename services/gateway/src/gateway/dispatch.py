"""The gateway's hot path, as one pure ASGI app: route, authenticate, limit, forward.

Order matters and is deliberate:

1. route match: unknown path 404, known path with another method 405 + ``Allow``;
2. identify the caller (a token is verified whenever one is sent; a token with
   an unknown kid counts as anonymous until step 3 let it through);
3. rate limit on that identity (so bad tokens still spend the IP's budget),
   then, for an unknown kid only, verify again with a JWKS refresh allowed;
4. authorise against the route's rule: 401 / 403, before any service is called;
5. read and check the body (size and type are the kit's BodyGuard, JSON here);
6. serve from the cache (anonymous catalogue GETs) or forward and stream back.
"""

from __future__ import annotations

import re
import secrets

import orjson
import structlog
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from emporium_kit.client_ip import ClientIpResolver, rate_limit_key
from emporium_kit.context import current_request_id
from emporium_kit.middleware import is_json_media_type
from emporium_kit.problems import problem_response
from gateway.cache import (
    STORED_HEADERS,
    CachedResponse,
    ResponseCache,
    cache_key_suffix,
    etag_matches,
    strong_etag,
    varies_only_on_what_the_key_holds,
)
from gateway.identity import INTERNAL_HEADER_PREFIX, Authenticator, Identity, identity_headers
from gateway.metrics import CACHE_LOOKUPS
from gateway.proxy import (
    HOP_BY_HOP,
    REQUEST_HEADERS_REPLACED,
    Upstream,
    UpstreamFailure,
    UpstreamResponse,
    connection_tokens,
    relay_response,
    response_headers,
)
from gateway.ratelimit import RateLimiter
from gateway.routes import RouteTable

log = structlog.get_logger(__name__)

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16


class ClientDisconnected(Exception):
    """The client went away while its request body was being read."""


def traceparent_for(candidate: str | None) -> str:
    """The client's W3C ``traceparent`` when valid, else the start of a new trace."""
    if candidate is not None:
        match = _TRACEPARENT.fullmatch(candidate.strip())
        if match and match.group(1) != _NO_TRACE and match.group(2) != _NO_SPAN:
            return candidate.strip()
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if any(name.lower().startswith(b"ratelimit-") for name, _ in headers):
                # The upstream reports the limit that decided its answer (the users
                # service's per-account login lockout): its numbers win over ours.
                extra_kept = [(n, v) for n, v in extra if not n.startswith(b"ratelimit-")]
            else:
                extra_kept = extra
            message["headers"] = [*headers, *extra_kept]
        await send(message)

    return sending


class GatewayDispatcher:
    def __init__(
        self,
        *,
        table: RouteTable,
        upstreams: dict[str, Upstream],
        authenticator: Authenticator,
        limiter: RateLimiter,
        cache: ResponseCache,
        client_ips: ClientIpResolver,
    ) -> None:
        self._table = table
        self._upstreams = upstreams
        self._authenticator = authenticator
        self._limiter = limiter
        self._cache = cache
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
            await problem_response(404, code="not-found", detail="No route matches this path.")(
                scope, receive, send
            )
            return
        scope["route"] = route  # the metrics middleware labels by route.path
        method: str = scope["method"]
        access = route.access.get(method)
        if access is None:
            await problem_response(
                405,
                code="method-not-allowed",
                detail=f"{method} is not allowed here; use {route.allow_header}.",
                headers={"Allow": route.allow_header},
            )(scope, receive, send)
            return

        headers = Headers(scope=scope)
        peer = scope.get("client")
        client_ip = self._client_ips.resolve(
            peer[0] if peer else None, headers.getlist("x-forwarded-for")
        )
        authorization = headers.get("authorization")
        identity = await self._authenticator.identify(authorization, may_fetch_keys=False)
        principal = identity.principal
        decision = await self._limiter.check(
            user_id=str(principal.user_id) if principal else None,
            client_ip=rate_limit_key(client_ip),
            auth_route=route.auth_rate_limited,
        )
        if identity.unknown_key and decision.allowed:
            # Charged to the client's IP first: only then may its kid cost a JWKS fetch.
            identity = await self._authenticator.identify(authorization)
            principal = identity.principal
        send = _with_headers(send, decision.headers())
        if not decision.allowed:
            await problem_response(
                429,
                code="rate-limited",
                detail=(
                    f"Too many requests; retry in {max(1, decision.reported.reset_after)} seconds."
                ),
            )(scope, receive, send)
            return

        if access.authenticated and principal is None:
            await self._unauthenticated(identity, scope, receive, send)
            return
        if access.permission and principal is not None and not principal.has(access.permission):
            await problem_response(
                403,
                code="forbidden",
                detail=f"This action requires the '{access.permission}' permission.",
            )(scope, receive, send)
            return

        body: bytes | None = None
        if "content-length" in headers or "transfer-encoding" in headers:
            body = await read_body(receive)
            if body and is_json_media_type(headers.get("content-type")):
                try:
                    orjson.loads(body)
                except orjson.JSONDecodeError:
                    await problem_response(
                        400, code="malformed-json", detail="The request body is not valid JSON."
                    )(scope, receive, send)
                    return

        cacheable = route.cacheable and method == "GET" and not identity.presented
        upstream_headers = self._upstream_headers(
            scope, identity, client_ip=client_ip, cacheable=cacheable
        )
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope["query_string"]:
            target = f"{target}?{scope['query_string'].decode('latin-1')}"
        upstream = self._upstreams[route.service]
        if cacheable:
            await self._serve_cacheable(scope, receive, send, upstream, target, upstream_headers)
            return
        try:
            response = await upstream.send(method, target, upstream_headers, body)
        except UpstreamFailure as failure:
            await self._upstream_failed(failure, scope, receive, send)
            return
        await relay_response(response, send)

    async def _unauthenticated(
        self, identity: Identity, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if identity.unavailable:
            await problem_response(
                503,
                code="dependency-unavailable",
                detail="redis is unavailable: token revocations cannot be checked.",
                headers={"Retry-After": "5"},
            )(scope, receive, send)
            return
        if identity.error is None:
            detail, challenge = "This route requires a bearer token.", "Bearer"
        else:
            detail, challenge = identity.error, 'Bearer error="invalid_token"'
        await problem_response(
            401,
            code="invalid-token" if identity.error else "authentication-required",
            detail=detail,
            headers={"WWW-Authenticate": challenge},
        )(scope, receive, send)

    def _upstream_headers(
        self, scope: Scope, identity: Identity, *, client_ip: str, cacheable: bool
    ) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        forwarded: list[tuple[bytes, bytes]] = []
        if cacheable:
            # The cache key holds no header: the upstream sees none of the
            # client's, and is asked for the one representation that is stored.
            forwarded += [(b"accept", b"application/json"), (b"accept-encoding", b"identity")]
        else:
            declared = connection_tokens(raw)
            for name, value in raw:
                if (
                    name in HOP_BY_HOP
                    or name in REQUEST_HEADERS_REPLACED
                    or name in declared
                    or name.startswith(INTERNAL_HEADER_PREFIX)
                ):
                    continue
                if name == b"authorization" and identity.principal is None:
                    continue  # a refused token on an open route is not passed on
                forwarded.append((name, value))
        request_id = current_request_id() or ""
        traceparent = traceparent_for(Headers(raw=raw).get("traceparent"))
        forwarded += [
            (b"x-request-id", request_id.encode()),
            (b"traceparent", traceparent.encode()),
            (b"x-forwarded-for", client_ip.encode()),
            (b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()),
        ]
        if identity.principal is not None:
            forwarded += identity_headers(identity.principal)
        return forwarded

    async def _upstream_failed(
        self, failure: UpstreamFailure, scope: Scope, receive: Receive, send: Send
    ) -> None:
        extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
        await problem_response(
            failure.status,
            code=failure.kind,
            detail=failure.detail,
            headers=extra,
            service=failure.service,
        )(scope, receive, send)

    async def _serve_cacheable(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: Upstream,
        target: str,
        upstream_headers: list[tuple[bytes, bytes]],
    ) -> None:
        suffix = cache_key_suffix("GET", scope["path"], scope["query_string"])
        if_none_match = Headers(scope=scope).get("if-none-match")
        lookup = await self._cache.lookup(suffix)
        if lookup.entry is not None:
            CACHE_LOOKUPS.labels("hit").inc()
            await self._send_entry(lookup.entry, b"HIT", if_none_match, send)
            return
        CACHE_LOOKUPS.labels("miss").inc()
        try:
            response = await upstream.send("GET", target, upstream_headers, None)
        except UpstreamFailure as failure:
            await self._upstream_failed(failure, scope, receive, send)
            return
        if (
            response.status_code != 200
            or lookup.generation is None
            or not varies_only_on_what_the_key_holds(response.header(b"vary"))
        ):
            await relay_response(response, send, [(b"x-cache", b"MISS")])
            return
        body = await self._read_bounded(response)
        if body is None:
            await relay_response(response, send, [(b"x-cache", b"MISS")])
            return
        entry = CachedResponse(
            status=200,
            headers=[
                (name, value)
                for name, value in response_headers(response.raw_headers)
                if name.lower() in STORED_HEADERS
            ],
            body=body,
            etag=strong_etag(body),
        )
        await self._cache.store(lookup.generation, suffix, entry)
        await self._send_entry(entry, b"MISS", if_none_match, send)

    async def _read_bounded(self, response: UpstreamResponse) -> bytes | None:
        """The whole body when it fits the cache; None (nothing consumed) when it cannot."""
        length = response.header(b"content-length")
        if length is None or not length.isdigit() or int(length) > self._cache.max_body_bytes:
            return None
        try:
            return await response.aread()
        finally:
            await response.aclose()

    async def _send_entry(
        self, entry: CachedResponse, outcome: bytes, if_none_match: str | None, send: Send
    ) -> None:
        common = [
            (b"etag", entry.etag.encode()),
            (b"cache-control", f"public, max-age={self._cache.ttl_seconds}".encode()),
            (b"x-cache", outcome),
        ]
        if etag_matches(if_none_match, entry.etag):
            await send({"type": "http.response.start", "status": 304, "headers": common})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": entry.status,
                "headers": [
                    *entry.headers,
                    (b"content-length", str(len(entry.body)).encode()),
                    *common,
                ],
            }
        )
        await send({"type": "http.response.body", "body": entry.body})
