"""OpenTelemetry traces: one request is one trace, through HTTP, the outbox, RabbitMQ and consumers.

Every process calls :func:`configure_tracing` once at start-up. It installs the
SDK's tracer provider (always: trace and span ids then exist for every log
line, even with nothing exported) and the exporter that ``OTEL_TRACES_EXPORTER``
names: ``none`` (the default), ``otlp`` (OTLP over HTTP; the standard
``OTEL_EXPORTER_OTLP_*`` variables say where) or ``console``. Tests pass an
in-memory exporter instead. With nothing to export, nothing is sampled
(:func:`_sampler`): ids and propagation remain, span bookkeeping does not.
``OTEL_SDK_DISABLED=true`` turns tracing off altogether (no spans, no
propagation beyond what the client sent).

What each part instruments, so the pieces join up:

* HTTP servers: :func:`instrument_asgi` (the ASGI instrumentation), around
  every stack the kit's app factory builds (FastAPI's and a fast path's); it
  continues a client's or the gateway's ``traceparent``, and
  :class:`RouteSpanName` names each span by its route template. Sampling is
  decided there, before any instrumentation sees the request: a request that
  is not recorded gets a context and nothing else (instrumentation suppressed),
  so sampling 1 in 10 costs the nine others what the default costs.
* HTTP clients: :func:`aiohttp_trace_configs` for the gateway's proxy
  sessions, :func:`instrument_httpx` for httpx clients; both inject
  ``traceparent`` into the requests they send.
* PostgreSQL and Redis: :func:`instrument_sqlalchemy` (called by
  ``emporium_kit.database.create_engine`` before it creates an engine, so
  only processes with a database load SQLAlchemy's instrumentation) and
  :func:`instrument_redis` (called by :func:`configure_tracing` when redis is
  installed; tracing is configured before clients are created).
* Messaging, with our own propagation (no aio-pika instrumentation): the
  outbox stores the current trace context with every row
  (:func:`current_trace_headers`), the relay publishes each row in a producer
  span that continues it and puts its own context in the message's AMQP
  headers, and the consumer handles each message in a consumer span that
  continues those (:func:`continue_trace`).
* Logs: :func:`add_trace_ids` is a structlog processor that adds ``trace_id``
  and ``span_id`` of the current span to every line.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Literal

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, Sampler
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

from emporium_kit.client_ip import ClientIpResolver

__all__ = [
    "RouteSpanName",
    "SpanKind",
    "TraceContextMiddleware",
    "add_trace_ids",
    "aiohttp_trace_configs",
    "configure_tracing",
    "continue_trace",
    "current_trace_headers",
    "instrument_asgi",
    "instrument_httpx",
    "instrument_redis",
    "instrument_sqlalchemy",
    "name_server_span",
    "untraced",
    "untraced_client_headers",
]

Exporter = Literal["none", "otlp", "console"]

_TRACER_NAME = "emporium"

_sampler_in_use: Sampler | None = None
"""The sampler of the provider :func:`configure_tracing` installed; None when it
installed none (tracing disabled, or not configured in this process)."""


def tracing_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def configure_tracing(
    service: str,
    *,
    exporter: Exporter | None = None,
    span_exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Install the tracer provider of this process; returns it (None when disabled).

    ``exporter`` defaults to ``OTEL_TRACES_EXPORTER`` (``none``).
    ``span_exporter`` (tests: an in-memory exporter) is added with a
    synchronous processor, so a finished span is visible at once.
    """
    global _sampler_in_use
    if tracing_disabled():
        _sampler_in_use = None
        return None
    chosen = exporter or _exporter_from_environment()
    exporting = chosen != "none" or span_exporter is not None
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        sampler=_sampler(exporting=exporting),
        id_generator=_RootTraceIds(),
    )
    _sampler_in_use = provider.sampler
    if chosen == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif chosen == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    # Process-wide client instrumentations, for the clients this process has
    # installed. SQLAlchemy is instrumented by the database part when it
    # creates an engine, so a process without a database never loads it.
    # Redis and SQL spans carry nothing across processes: when no span is
    # recorded they would only cost time, so they are not installed then.
    if importlib.util.find_spec("redis") is not None and _may_record():
        instrument_redis()
    if importlib.util.find_spec("httpx") is not None:
        instrument_httpx()
    return provider


def _sampler(*, exporting: bool) -> Sampler | None:
    """What to record. Exporting: the SDK's default, ``OTEL_TRACES_SAMPLER`` when set
    (``parentbased_always_on`` otherwise). Exporting nothing: record nothing.

    A span that is not sampled still has a valid trace and span id, so log lines
    carry ``trace_id`` and ``traceparent`` still propagates (flag ``00``), but
    no span is built, timed or processed: the cost of tracing that goes nowhere
    is a context per request (docs/performance.md has both measured).
    """
    if exporting or os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ALWAYS_OFF


def _exporter_from_environment() -> Exporter:
    value = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if value not in ("none", "otlp", "console"):
        raise ValueError(f"OTEL_TRACES_EXPORTER must be none, otlp or console, not {value!r}")
    return value  # type: ignore[return-value]


def tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


def instrument_asgi(app: Any, *, sampled_flag_trusted_from: Sequence[str] | None = None) -> Any:
    """``app`` behind a server span per request, continuing the caller's ``traceparent``.

    Whether a request is recorded is decided first, by this process's sampler,
    before any instrumentation sees it (:class:`TraceContextMiddleware`). A
    recorded request goes through the generic ASGI instrumentation; its span
    starts named by the method alone (the raw path would make span names
    unbounded) and the app names it by its route template once it has matched
    one (:func:`name_server_span`, :class:`RouteSpanName`). Any other request
    takes the context-only path: a span that records nothing, with
    instrumentation suppressed for the whole request.

    ``sampled_flag_trusted_from`` (networks; None: every caller) says whose
    "sampled" flag a parent-based sampler may follow. Any other caller keeps
    its trace id, but whether its request is recorded is decided as for a new
    trace: a client on the internet cannot have every request it sends
    recorded (or none) by setting a flag. Its ``baggage`` is dropped too
    (name-value pairs the services behind would take as the system's own).
    The gateway passes its trusted proxies; the services behind it follow the
    gateway's flag.
    """
    if tracing_disabled():
        return app
    recorded = None
    if _sampler_in_use is not ALWAYS_OFF:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        recorded = OpenTelemetryMiddleware(
            app, exclude_spans=["receive", "send"], default_span_details=_method_only
        )
    return TraceContextMiddleware(
        app,
        recorded=recorded,
        sampler=_sampler_in_use,
        sampled_flag_trusted_from=sampled_flag_trusted_from,
    )


class TraceContextMiddleware:
    """Decides each request's sampling up front; a request not sampled costs a context.

    A request the sampler records goes to ``recorded`` (the ASGI
    instrumentation around the same app), which decides again on the same trace
    id and so reaches the same answer: the caller's trace id, or for a new
    trace the id drawn here, handed to the provider's id generator
    (:class:`_RootTraceIds`). The samplers the SDK configures from
    ``OTEL_TRACES_SAMPLER`` judge by the parent and the trace id alone, so the
    two decisions agree.

    Any other request gets the span the SDK's tracer would make for it, built
    here directly (the caller's trace id and trace state, a new span id, flags
    ``00``): log lines and forwarded ``traceparent`` headers still join the
    caller's trace. Where client instrumentations are installed (a sampler that
    records some requests), they are suppressed for the rest of the request
    (OpenTelemetry's ``suppress_instrumentation``): they would only build
    spans that go nowhere. Measured (docs/performance.md, session 13): with 1
    in 10 sampled, the nine others had cost what recording costs, because the
    instrumentation ran for each of them.
    """

    def __init__(
        self,
        app: Any,
        *,
        recorded: Any = None,
        sampler: Sampler | None = None,
        sampled_flag_trusted_from: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self.recorded = recorded
        self.sampler = sampler
        self._ids = RandomIdGenerator()
        self._flag_trusted = (
            None
            if sampled_flag_trusted_from is None
            else ClientIpResolver(sampled_flag_trusted_from).is_trusted_peer
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _TRACE_HEADERS:
                # The first of repeated headers, as the ASGI instrumentation takes it.
                carrier.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        untrusted = bool(carrier) and self._caller_untrusted(scope)
        if untrusted:
            carrier.pop("baggage", None)
        parent = propagate.extract(carrier) if carrier else None
        caller = trace.get_current_span(parent).get_span_context()
        if untrusted and self.recorded is not None:
            # The ASGI instrumentation reads the headers itself: it must see
            # the same context (the flag decided here, no baggage).
            traceparent = None
            if caller.is_valid:
                parent, traceparent = self._flag_decided_here(scope, caller)
            scope = _with_trace_headers(scope, traceparent)
        trace_id = caller.trace_id if caller.is_valid else self._ids.generate_trace_id()
        if self.recorded is not None and self._records(parent, trace_id, scope):
            preset = _root_trace_id.set(None if caller.is_valid else trace_id)
            try:
                await self.recorded(scope, receive, send)
            finally:
                _root_trace_id.reset(preset)
            return
        span = NonRecordingSpan(
            SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.DEFAULT),
                trace_state=caller.trace_state,
            )
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            if self.recorded is None:  # nothing is instrumented in this process
                await self.app(scope, receive, send)
            else:
                with _suppressed_instrumentation():
                    await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)

    def _records(self, parent: otel_context.Context | None, trace_id: int, scope: Any) -> bool:
        if self.sampler is None:  # no provider of ours: the instrumentation decides
            return True
        decision = self.sampler.should_sample(
            parent, trace_id, str(scope.get("method", "HTTP")), SpanKind.SERVER
        ).decision
        return decision is not Decision.DROP

    def _caller_untrusted(self, scope: Any) -> bool:
        if self._flag_trusted is None:
            return False
        peer = scope.get("client")
        return not self._flag_trusted(peer[0] if peer else None)

    def _flag_decided_here(
        self, scope: Any, caller: SpanContext
    ) -> tuple[otel_context.Context, bytes]:
        """The caller's context with its "sampled" flag replaced by this process's
        decision for a new trace (drawn on a random id: the caller chose its own),
        and that context's ``traceparent``."""
        sampled = self._records(None, self._ids.generate_trace_id(), scope)
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        parent = trace.set_span_in_context(
            NonRecordingSpan(
                SpanContext(
                    caller.trace_id,
                    caller.span_id,
                    is_remote=True,
                    trace_flags=flags,
                    trace_state=caller.trace_state,
                )
            )
        )
        traceparent = f"00-{caller.trace_id:032x}-{caller.span_id:016x}-{flags:02x}".encode()
        return parent, traceparent


def _with_trace_headers(scope: Any, traceparent: bytes | None) -> Any:
    """``scope`` without ``baggage`` and, given one, with ``traceparent`` replaced."""
    headers = [
        (name, traceparent if name == b"traceparent" and traceparent else value)
        for name, value in scope["headers"]
        if name != b"baggage"
    ]
    return {**scope, "headers": headers}


class RouteSpanName:
    """Names a recorded server span by the route template the request matched.

    The innermost kit middleware: Starlette's router puts the matched route in
    the request's scope (``scope["route"]``), and the span is named from it as
    the answer starts. A request that is not recorded passes straight through.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not trace.get_current_span().is_recording():
            await self.app(scope, receive, send)
            return

        async def named_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                template = getattr(scope.get("route"), "path", None)
                if isinstance(template, str):
                    name_server_span(scope["method"], template)
            await send(message)

        await self.app(scope, receive, named_send)


class _RootTraceIds(RandomIdGenerator):
    """Random ids, except the trace id :class:`TraceContextMiddleware` already drew
    for the request it decided to record (used once, by the request's root span)."""

    def generate_trace_id(self) -> int:
        preset = _root_trace_id.get()
        if preset is None:
            return super().generate_trace_id()
        _root_trace_id.set(None)
        return preset


_root_trace_id: ContextVar[int | None] = ContextVar("emporium_root_trace_id", default=None)


def _may_record() -> bool:
    """False when this process's provider samples nothing: no instrumentation is installed."""
    return _sampler_in_use is not ALWAYS_OFF


def _suppressed_instrumentation() -> AbstractContextManager[None]:
    # Only processes that install instrumentation get here; the default
    # (nothing recorded) never loads OpenTelemetry's instrumentation package.
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def _instrumentation_enabled() -> bool:
    from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled

    return is_http_instrumentation_enabled()


_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def _method_only(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    return str(scope.get("method", "HTTP")), {}


def name_server_span(method: str, route_template: str) -> None:
    """Names the current server span ``<METHOD> <route template>`` (semantic conventions)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route_template}")
        span.set_attribute("http.route", route_template)


def instrument_sqlalchemy() -> None:
    """A span per SQL statement of every engine created from now on (process-wide).

    Not installed when this process records no spans (nothing to attach them to).
    """
    if tracing_disabled() or not _may_record():
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        # Its declared range stops below SQLAlchemy 2.1, which it instruments the
        # same way (engine events); the trace test fails if that ever changes.
        instrumentor.instrument(skip_dep_check=True)


def instrument_redis() -> None:
    """A span per Redis command (redis-py, process-wide)."""
    if tracing_disabled():
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_httpx() -> None:
    """Client spans and ``traceparent`` on every httpx request (process-wide)."""
    if tracing_disabled():
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def aiohttp_trace_configs() -> list[Any]:
    """``trace_configs`` for an aiohttp ``ClientSession``: client spans and ``traceparent``.

    None when this process records no spans. The caller adds
    :func:`untraced_client_headers` to each request: the same propagation for a
    request that is not recorded, without building a client span for it.
    """
    if tracing_disabled() or not _may_record():
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config()]


def untraced_client_headers() -> list[tuple[bytes, bytes]]:
    """The current trace context as raw headers, for a request that no client span covers.

    Empty when a client span covers this request (its instrumentation injects
    its own context): a recorded request in a process that installed client
    instrumentation. Empty too when no provider of ours is installed (tracing
    disabled): no trace context is continued then.
    """
    if _sampler_in_use is None:
        return []
    if _sampler_in_use is not ALWAYS_OFF and _instrumentation_enabled():
        return []
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in current_trace_headers().items()]


def current_trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def continue_trace(
    name: str,
    headers: Mapping[str, Any] | None,
    *,
    kind: SpanKind,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[Span]:
    """A span named ``name`` in the trace that ``headers`` carry (a new one if none).

    When the span is not recorded, instrumentation is suppressed inside it, as
    for a request that is not recorded (:class:`TraceContextMiddleware`).
    """
    carrier = {k: v for k, v in (headers or {}).items() if isinstance(v, str)}
    parent = propagate.extract(carrier)
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(
            name, kind=kind, attributes=dict(attributes or {})
        ) as span:
            if span.is_recording() or not _may_record():
                yield span
            else:
                with _suppressed_instrumentation():
                    yield span
    finally:
        otel_context.detach(token)


def untraced() -> AbstractContextManager[None]:
    """Background work that belongs to no request: no trace is started for it.

    A loop that polls (the outbox relay's pass, its lag sample and purge)
    would otherwise start a new trace for every SQL statement it runs, sampled
    like a request: a steady stream of one-span traces that say nothing. A
    span continued inside (:func:`continue_trace`, for work that carries a
    trace, like publishing a stored event) records as usual: it starts from
    the carried context, which holds no suppression.
    """
    if not _may_record():
        return nullcontext()
    return _suppressed_instrumentation()


def add_trace_ids(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, if any."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict
