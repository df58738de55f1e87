"""Step 6 of a request: what is sent to the service, and how its answer comes back.

The client's headers are passed on except hop-by-hop ones, those the gateway
replaces and its internal identity headers (which only it may set, after
verifying a token). A cacheable request passes on none of them (see
:mod:`gateway.cache`). Every forwarded request carries the request id, the
client IP the gateway believes and, for an accepted token, the caller's
identity. The client's trace headers are not passed on as they came: the
trace context the gateway continues is sent instead, once (by OpenTelemetry's
aiohttp instrumentation for a recorded request, by
:func:`~emporium_kit.tracing.untraced_client_headers` otherwise): the client's
trace id and ``tracestate``, the gateway's span and sampling decision, and
``baggage`` only from a trusted proxy (:mod:`emporium_kit.tracing`).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.context import current_request_id
from emporium_kit.identity.tokens import Principal
from emporium_kit.problems import problem_response
from emporium_kit.tracing import untraced_client_headers
from gateway.proxy import (
    HOP_BY_HOP,
    REQUEST_HEADERS_REPLACED,
    Upstream,
    UpstreamFailure,
    connection_tokens,
    relay_response,
)

Header = tuple[bytes, bytes]

# Internal identity headers: added by the gateway after verification only. Any
# client-sent header with this prefix is dropped before a request is forwarded.
INTERNAL_HEADER_PREFIX = b"x-emporium-"
USER_ID_HEADER = b"x-emporium-user-id"
SESSION_ID_HEADER = b"x-emporium-session-id"
ROLES_HEADER = b"x-emporium-roles"
PERMISSIONS_HEADER = b"x-emporium-permissions"


def believed_client_ip(resolver: ClientIpResolver, scope: Scope, headers: Headers) -> str:
    """The socket peer, or the client a trusted proxy names in ``X-Forwarded-For``."""
    peer = scope.get("client")
    return resolver.resolve(peer[0] if peer else None, headers.getlist("x-forwarded-for"))


def request_target(scope: Scope) -> str:
    """The path (as the client sent it, already vetted by the edge) and query."""
    target: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope["query_string"]:
        target = f"{target}?{scope['query_string'].decode('latin-1')}"
    return target


def identity_headers(principal: Principal) -> list[Header]:
    return [
        (USER_ID_HEADER, str(principal.user_id).encode()),
        (SESSION_ID_HEADER, str(principal.session_id).encode()),
        (ROLES_HEADER, ",".join(sorted(principal.roles)).encode()),
        (PERMISSIONS_HEADER, ",".join(sorted(principal.permissions)).encode()),
    ]


def upstream_headers(
    scope: Scope, principal: Principal | None, *, client_ip: str, cacheable: bool
) -> list[Header]:
    """``principal``: the caller, when its token was accepted."""
    raw: list[Header] = scope["headers"]
    forwarded: list[Header] = []
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
            if name == b"authorization" and principal is None:
                continue  # a refused token on an open route is not passed on
            forwarded.append((name, value))
    forwarded += [
        (b"x-request-id", (current_request_id() or "").encode()),
        (b"x-forwarded-for", client_ip.encode()),
        (b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()),
        *untraced_client_headers(),
    ]
    if principal is not None:
        forwarded += identity_headers(principal)
    return forwarded


async def send_failure(
    failure: UpstreamFailure, scope: Scope, receive: Receive, send: Send
) -> None:
    """The problem document for an upstream that could not answer (502/503/504)."""
    extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    await problem_response(
        failure.status,
        code=failure.kind,
        detail=failure.detail,
        headers=extra,
        service=failure.service,
    )(scope, receive, send)


async def forward(
    upstream: Upstream,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    headers: list[Header],
    body: bytes | None,
) -> None:
    """Sends the request on and streams the answer back as it arrives."""
    try:
        response = await upstream.send(scope["method"], request_target(scope), headers, body)
    except UpstreamFailure as failure:
        await send_failure(failure, scope, receive, send)
        return
    await relay_response(response, send)


def with_rate_limit_headers(send: Send, extra: list[Header]) -> Send:
    """Adds the gateway's ``RateLimit-*`` headers to the response, unless it has its own."""

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
