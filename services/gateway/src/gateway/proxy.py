"""Forwarding to upstream services: one pooled ``aiohttp`` session per upstream.

Requests go through an ``aiohttp.ClientSession`` (ADR 0006: httpx/httpcore cost
the gateway most of its CPU per proxied request). Each upstream also keeps a
small ``httpx.AsyncClient`` for the control plane (JWKS, OpenAPI documents,
readiness probes), whose rate is a few requests a minute.

Each upstream has timeouts on connect, pool wait and read (a stalled body write
is bounded by the read timeout, whose timer runs from the moment the request is
sent); a circuit breaker (purgatory, in process) that opens after consecutive
failed requests; and, for idempotent methods, retries on connection-level errors
(tenacity). Methods that are not idempotent are retried only when the connection
could not be opened, since the service then never saw the request.

Failures become :class:`UpstreamFailure`: 503 when the service is down, its
circuit is open or our pool is exhausted, 504 when it stopped answering in
time. Never a hang and never a 500.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import aiohttp
import httpx
import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.base import Event
from purgatory.domain.model import OpenedState
from starlette.types import Send
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from yarl import URL

from emporium_kit.tracing import aiohttp_trace_configs
from gateway.metrics import UPSTREAM_ERRORS

log = structlog.get_logger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself (or by the client library from the body) rather than passed on.
REQUEST_HEADERS_REPLACED = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-request-id",
        b"traceparent",
        b"tracestate",  # re-sent from the trace context continued (once)
        b"baggage",  # likewise, and only a trusted proxy's (emporium_kit.tracing)
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-real-ip",
        b"forwarded",
    }
)
# uvicorn writes its own Date; the Server banner never leaves the gateway.
RESPONSE_HEADERS_DROPPED = HOP_BY_HOP | {b"server", b"date"}
# aiohttp adds these by default; the upstream gets the client's own or none.
_NO_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})
WHOLE_BODY_BYTES = 64 * 1024
"""An upstream body of at most this declared length is relayed in one message: one
send through the middleware instead of a chunk and an empty end, without holding
more than this in memory for it."""
_CONTROL_CONNECTIONS = 4
_KEEPALIVE_SECONDS = 15.0
_DNS_CACHE_SECONDS = 300

# Connection not opened (refused, unreachable, connect or pool timeout): never sent.
_NEVER_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
# A kept-alive connection closed or reset under the request: safe to repeat if idempotent.
_SAFE_TO_REPEAT: tuple[type[BaseException], ...] = (
    *_NEVER_SENT,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float
    read: float
    write: float
    pool: float


class UpstreamFailure(Exception):
    """An upstream did not answer; carries what the client is told."""

    def __init__(
        self, service: str, *, status: int, kind: str, detail: str, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.service = service
        self.status = status
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (hop-by-hop by declaration)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    return frozenset(tokens)


def response_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response headers worth passing on, names lowercased (as ASGI expects)."""
    declared = connection_tokens(raw)
    return [
        (lowered, value)
        for name, value in raw
        if (lowered := name.lower()) not in RESPONSE_HEADERS_DROPPED and lowered not in declared
    ]


class UpstreamResponse:
    """An upstream's answer with its body still unread: stream it, or read it whole."""

    __slots__ = ("_response", "raw_headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.raw_headers: Sequence[tuple[bytes, bytes]] = response.raw_headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header, by its lowercase name."""
        for key, value in self.raw_headers:
            if key.lower() == name:
                return value
        return None

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, content-encoding untouched (transfer framing removed)."""
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aread(self) -> bytes:
        return await self._response.read()

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end, closed otherwise.
        self._response.release()


def _breaker_event_logger(name: str, event_name: str, event: Event) -> None:
    if event_name == "state_changed":
        log.warning("circuit_state_changed", upstream=name, state=getattr(event, "state", None))


def circuit_breakers(*, threshold: int, reset_seconds: float) -> AsyncCircuitBreakerFactory:
    factory = AsyncCircuitBreakerFactory(
        default_threshold=threshold,
        default_ttl=reset_seconds,
        # Only an upstream's failure counts; a client going away does not.
        exclude=[(BaseException, lambda exc: not isinstance(exc, UpstreamFailure))],
    )
    factory.add_listener(_breaker_event_logger)
    return factory


class Upstream:
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeouts: UpstreamTimeouts,
        max_connections: int,
        max_keepalive: int,
        breakers: AsyncCircuitBreakerFactory,
        retry_attempts: int,
        retry_backoff_seconds: float,
        breaker_reset_seconds: float,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        # The control plane (JWKS, OpenAPI, readiness): a few requests a minute.
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=timeouts.read,
                write=timeouts.write,
                pool=timeouts.pool,
            ),
            limits=httpx.Limits(
                max_connections=min(max_connections, _CONTROL_CONNECTIONS),
                max_keepalive_connections=min(max_keepalive, _CONTROL_CONNECTIONS),
            ),
            trust_env=False,
            follow_redirects=False,
        )
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            # aiohttp's connect covers waiting for a pooled connection and opening one.
            connect=timeouts.pool + timeouts.connect,
            sock_connect=timeouts.connect,
            sock_read=timeouts.read,
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._breakers = breakers
        self._breaker: AbstractAsyncContextManager[object] | None = None
        self._breaker_reset = breaker_reset_seconds
        # The first attempt is made directly (see _send_with_retries); tenacity runs
        # the retries: the attempts after it, with the waits those attempts have
        # always had (the wait before attempt n + 1 is the strategy's n-th).
        self._attempts = retry_attempts
        self._stop_retries = stop_after_attempt(retry_attempts - 1)
        self._wait = wait_exponential_jitter(
            multiplier=retry_backoff_seconds, max=0.5, jitter=retry_backoff_seconds
        )
        self._wait_after_retry = wait_exponential_jitter(
            multiplier=2 * retry_backoff_seconds, max=0.5, jitter=retry_backoff_seconds
        )

    def _open_session(self) -> aiohttp.ClientSession:
        """Made on first use: an aiohttp session belongs to the running event loop."""
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=_KEEPALIVE_SECONDS,
            ttl_dns_cache=_DNS_CACHE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,  # bodies pass through as the service encoded them
            skip_auto_headers=_NO_AUTO_HEADERS,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # A client span per forwarded request, whose context goes out as traceparent.
            trace_configs=aiohttp_trace_configs(),
        )
        return self._session

    async def send(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> UpstreamResponse:
        """Sends the request and returns the response with its body still unread."""
        url = URL(self.base_url + target, encoded=True)
        text_headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
        ]
        # The factory (circuit_breakers: purgatory's in-memory storage, per process)
        # keeps one context per name, changed in place: the breaker is fetched once
        # rather than through its unit of work per request.
        breaker = self._breaker or await self._fetch_breaker()
        try:
            async with breaker:
                return await self._send_with_retries(
                    method, url, text_headers, body, method in IDEMPOTENT_METHODS
                )
        except OpenedState as exc:
            retry_after = max(1, math.ceil(exc.opened_at + self._breaker_reset - time.time()))
            UPSTREAM_ERRORS.labels(self.name, "circuit_open").inc()
            raise UpstreamFailure(
                self.name,
                status=503,
                kind="circuit-open",
                detail=f"The {self.name} service is failing; calls to it are paused.",
                retry_after=retry_after,
            ) from None

    async def _fetch_breaker(self) -> AbstractAsyncContextManager[object]:
        self._breaker = await self._breakers.get_breaker(self.name)
        return self._breaker

    async def _send_with_retries(
        self,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        idempotent: bool,
    ) -> UpstreamResponse:
        session = self._session or self._open_session()
        retryable = _SAFE_TO_REPEAT if idempotent else _NEVER_SENT
        try:
            try:
                # Nearly every request is answered at its first attempt, made here
                # directly: tenacity's state (5.8 % of a proxied request's samples
                # when it was built for every request) is built only for a retry.
                return await self._attempt(session, method, url, headers, body)
            except retryable:
                if self._attempts == 1:
                    raise
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(retryable),
                stop=self._stop_retries,
                wait=self._wait_after_retry,
                before=self._back_off_after_first_attempt,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(session, method, url, headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure(exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> UpstreamResponse:
        response = await session.request(
            method, url, headers=headers, data=body, allow_redirects=False
        )
        return UpstreamResponse(response)

    async def _back_off_after_first_attempt(self, retry_state: RetryCallState) -> None:
        """Before the first retry, the wait the first (direct) attempt's failure earned."""
        if retry_state.attempt_number == 1:
            await asyncio.sleep(self._wait(retry_state))

    def _failure(self, exc: BaseException) -> UpstreamFailure:
        if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
            UPSTREAM_ERRORS.labels(self.name, "timeout").inc()
            log.warning("upstream_timeout", upstream=self.name, error=repr(exc))
            return UpstreamFailure(
                self.name,
                status=504,
                kind="upstream-timeout",
                detail=f"The {self.name} service did not answer in time.",
            )
        UPSTREAM_ERRORS.labels(self.name, "unavailable").inc()
        log.warning("upstream_unavailable", upstream=self.name, error=repr(exc))
        return UpstreamFailure(
            self.name,
            status=503,
            kind="upstream-unavailable",
            detail=f"The {self.name} service is unavailable; try again shortly.",
            retry_after=5,
        )

    async def ready(self, timeout_seconds: float) -> None:
        """Raises unless the service's own readiness probe answers 200."""
        response = await self.client.get("/health/ready", timeout=timeout_seconds)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} answered {response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None


async def relay_response(
    response: UpstreamResponse, send: Send, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Streams an upstream response to the client, as it arrives; a small one whose
    length is declared (most API answers) is read whole and sent in one message."""
    try:
        start = {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [*response_headers(response.raw_headers), *extra_headers],
        }
        length = response.header(b"content-length")
        if length is not None and length.isdigit() and int(length) <= WHOLE_BODY_BYTES:
            body = await response.aread()
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(start)
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()
