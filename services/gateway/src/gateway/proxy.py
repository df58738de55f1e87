"""Forwarding to upstream services: one pooled ``httpx.AsyncClient`` per upstream.

Each upstream has timeouts on connect, read, write and pool; a circuit breaker
(purgatory, in process) that opens after consecutive failed requests; and, for
idempotent methods, retries on connection-level errors (tenacity). Methods that
are not idempotent are retried only when the connection could not be opened,
since the service then never saw the request.

Failures become :class:`UpstreamFailure`: 503 when the service is down, its
circuit is open or our pool is exhausted, 504 when it stopped answering in
time. Never a hang and never a 500.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

import httpx
import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.base import Event
from purgatory.domain.model import OpenedState
from starlette.types import Send
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

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
# Set by the gateway itself (or by httpx from the body) rather than passed on.
REQUEST_HEADERS_REPLACED = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-request-id",
        b"traceparent",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-real-ip",
        b"forwarded",
    }
)
# uvicorn writes its own Date; the Server banner never leaves the gateway.
RESPONSE_HEADERS_DROPPED = HOP_BY_HOP | {b"server", b"date"}

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_SAFE_TO_REPEAT = (*_NEVER_SENT, httpx.RemoteProtocolError, httpx.ReadError)


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
    declared = connection_tokens(raw)
    return [
        (name, value)
        for name, value in raw
        if (lowered := name.lower()) not in RESPONSE_HEADERS_DROPPED and lowered not in declared
    ]


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
        timeout: httpx.Timeout,
        limits: httpx.Limits,
        breakers: AsyncCircuitBreakerFactory,
        retry_attempts: int,
        retry_backoff_seconds: float,
        breaker_reset_seconds: float,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=limits,
            trust_env=False,
            follow_redirects=False,
        )
        self._breakers = breakers
        self._breaker_reset = breaker_reset_seconds
        self._stop = stop_after_attempt(retry_attempts)
        self._wait = wait_exponential_jitter(
            multiplier=retry_backoff_seconds, max=0.5, jitter=retry_backoff_seconds
        )
        self._retry_idempotent = retry_if_exception_type(_SAFE_TO_REPEAT)
        self._retry_unsent = retry_if_exception_type(_NEVER_SENT)

    async def send(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> httpx.Response:
        """Sends the request and returns the response with its body still unread."""
        request = self.client.build_request(method, target, headers=headers, content=body)
        breaker = await self._breakers.get_breaker(self.name)
        try:
            async with breaker:
                return await self._send_with_retries(request, method in IDEMPOTENT_METHODS)
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

    async def _send_with_retries(self, request: httpx.Request, idempotent: bool) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=self._retry_idempotent if idempotent else self._retry_unsent,
            stop=self._stop,
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._failure(exc) from exc
        except httpx.TransportError as exc:
            raise self._failure(exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _failure(self, exc: httpx.TransportError) -> UpstreamFailure:
        if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
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


async def relay_response(
    response: httpx.Response, send: Send, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Streams an upstream response to the client, as it arrives."""
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [*response_headers(response.headers.raw), *extra_headers],
            }
        )
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()


def build_upstreams(
    urls: dict[str, str],
    *,
    timeout: httpx.Timeout,
    limits: httpx.Limits,
    breakers: AsyncCircuitBreakerFactory,
    retry_attempts: int,
    retry_backoff_seconds: float,
    breaker_reset_seconds: float,
) -> dict[str, Upstream]:
    return {
        name: Upstream(
            name,
            url,
            timeout=timeout,
            limits=limits,
            breakers=breakers,
            retry_attempts=retry_attempts,
            retry_backoff_seconds=retry_backoff_seconds,
            breaker_reset_seconds=breaker_reset_seconds,
        )
        for name, url in urls.items()
    }
