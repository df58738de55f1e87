"""Pure ASGI middleware shared by every service.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request cost to a few
function calls and lets bodies stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emporium_kit.context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from emporium_kit.problems import problem_response

log = structlog.get_logger("emporium.access")

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
)
# Swagger UI loads its bundle from the gateway itself (see the gateway's docs
# route); everything else is JSON, for which the strictest policy is right.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_DOCS_CSP_BYTES = DOCS_CSP.encode("latin-1")
_API_CSP_BYTES = API_CSP.encode("latin-1")


_SECURITY_HEADER_LINES: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS
)
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")
_CSP_NAME = b"content-security-policy"
# Headers of the application's answer that the edge replaces (the request id) or
# drops (``server`` says which software answered; nobody needs to know).
_REPLACED = frozenset({_REQUEST_ID_NAME, b"server"})


def first_header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lowercase, as ASGI gives names),
    read from the raw lines without building a ``Headers`` object."""
    for line_name, value in scope["headers"]:
        if line_name == name:
            return str(value.decode("latin-1"))
    return None


def edge_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id: bytes, csp: bytes
) -> list[tuple[bytes, bytes]]:
    """The response's headers as the client gets them: ``server`` and any request id
    the application set dropped, ours added, and each security header the
    application did not set itself."""
    kept = []
    present = set()
    for line in headers:
        name = line[0].lower()
        if name not in _REPLACED:
            kept.append(line)
            present.add(name)
    kept.append((_REQUEST_ID_NAME, request_id))
    kept.extend(line for line in _SECURITY_HEADER_LINES if line[0] not in present)
    if _CSP_NAME not in present:
        kept.append((_CSP_NAME, csp))
    return kept


class RequestContextMiddleware:
    """Request id, security headers and one access-log line per request.

    The request id comes from a valid client ``X-Request-ID`` or is generated;
    it is bound to the log context, exposed to code through a contextvar and
    echoed on the response.
    """

    def __init__(
        self, app: ASGIApp, *, docs_paths: Iterable[str] = ("/docs", "/docs/oauth2-redirect")
    ) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(first_header(scope, _REQUEST_ID_NAME))
        request_id_bytes = request_id.encode("ascii")  # accept_request_id: ASCII only
        token = request_id_var.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        csp = _DOCS_CSP_BYTES if scope["path"] in self.docs_paths else _API_CSP_BYTES
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                message["headers"] = edge_headers(message.get("headers", ()), request_id_bytes, csp)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Answer with a problem document that still carries the request id;
            # the traceback goes to the log, never to the client.
            log.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            if not responded:
                await problem_response(500, detail="An unexpected error occurred.")(
                    scope, receive, send_with_headers
                )
            else:
                raise
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(token)


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` so that frameworks re-raise it untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"Request bodies are limited to {limit} bytes.")


def _body_headers(scope: Scope) -> tuple[str | None, bool, str | None]:
    """``Content-Length`` (the first), whether ``Transfer-Encoding`` is there, and
    ``Content-Type`` (the first): one pass over the raw header lines, as
    ``starlette.datastructures.Headers`` reads them (names are lowercase in ASGI)."""
    length: str | None = None
    chunked = False
    content_type: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            if length is None:
                length = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
    return length, chunked, content_type


class BodyGuardMiddleware:
    """Refuses oversized bodies (413) and non-JSON bodies (415) before any route runs.

    Every method is guarded: a GET or DELETE may carry a body too, and whatever
    reads it (a route, or the gateway forwarding it) must never hold more than
    the limit. The size is checked against ``Content-Length`` and, for chunked
    uploads, while the body streams in, so a lying client is cut off as soon as
    it passes the limit and the rest is never read.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked, content_type = _body_headers(scope)
        if length is not None:
            if not length.isdigit():
                await problem_response(400, detail="Invalid Content-Length header.")(
                    scope, receive, send
                )
                return
            if int(length) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        has_body = (length is not None and int(length) > 0) or chunked
        if has_body and (content_type is None or not is_json_media_type(content_type)):
            await problem_response(
                415,
                code="unsupported-media-type",
                detail="Request bodies must be application/json.",
            )(scope, receive, send)
            return
        if not has_body:
            # No Content-Length (or zero) and no Transfer-Encoding: HTTP/1.1 gives the
            # request no body, so there is nothing to count and nothing to cut off.
            await self.app(scope, receive, send)
            return

        received = 0
        response_started = False

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(
            413,
            code="body-too-large",
            detail=f"Request bodies are limited to {self.max_body_bytes} bytes.",
            headers={"Connection": "close"},
        )(scope, receive, send)


class HeadAsGetMiddleware:
    """Answers ``HEAD`` as the ``GET`` of the same target, without its content.

    RFC 9110 (9.3.2): HEAD is GET without content, and every general-purpose
    server must support both. FastAPI's routes and the gateway's route table
    name GET only, so a HEAD used to be a 405 everywhere. Inside this
    middleware the request is a GET (the same routes, fast paths, permissions,
    rate limits and cache); outside it, it stays a HEAD (access log, metrics,
    and the server, which sends no content for a HEAD), and the answer keeps
    every header the GET's has, ``Content-Length`` included, with its content
    dropped. What the inner app leaves in its scope (the matched route, for the
    metrics) is copied back.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_content(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, without_content)
        finally:
            scope.update((key, value) for key, value in inner.items() if key != "method")
