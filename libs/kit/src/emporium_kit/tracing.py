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

* HTTP servers: :func:`instrument_app` (FastAPI/ASGI), called by the kit's app
  factory; it continues a client's or the gateway's ``traceparent``.
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

__all__ = [
    "SpanKind",
    "add_trace_ids",
    "aiohttp_trace_configs",
    "configure_tracing",
    "continue_trace",
    "current_trace_headers",
    "instrument_app",
    "instrument_asgi",
    "instrument_httpx",
    "instrument_redis",
    "instrument_sqlalchemy",
    "name_server_span",
    "untraced_client_headers",
]

Exporter = Literal["none", "otlp", "console"]

_TRACER_NAME = "emporium"

_records_spans = True
"""False once :func:`configure_tracing` installed a provider that samples nothing."""


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
    global _records_spans
    if tracing_disabled():
        _records_spans = True  # no provider of ours: none that samples nothing
        return None
    chosen = exporter or _exporter_from_environment()
    exporting = chosen != "none" or span_exporter is not None
    sampler = _sampler(exporting=exporting)
    _records_spans = sampler is not ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}), sampler=sampler)
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
    if importlib.util.find_spec("redis") is not None and _records_spans:
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


def instrument_app(app: Any) -> None:
    """Server spans for every request of a FastAPI app (continuing ``traceparent``).

    When this process records no spans, :class:`TraceContextMiddleware` (outermost)
    takes the place of the FastAPI instrumentation, whose attribute collection and
    route lookup per request would only feed spans that go nowhere.
    """
    if tracing_disabled():
        return
    if not _records_spans:
        app.add_middleware(TraceContextMiddleware)
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])


def instrument_asgi(app: Any) -> Any:
    """``app`` behind the generic ASGI server-span middleware (for paths outside FastAPI).

    A span starts named by the method alone (the raw path would make span names
    unbounded); the app names it by its route template once it has matched
    one, with :func:`name_server_span`. When this process records no spans,
    :class:`TraceContextMiddleware` takes its place: the caller's trace
    continues (ids in logs, ``traceparent`` onwards) without the
    instrumentation's per-request attribute and metric work.
    """
    if tracing_disabled():
        return app
    if not _records_spans:
        return TraceContextMiddleware(app)
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        app, exclude_spans=["receive", "send"], default_span_details=_method_only
    )


class TraceContextMiddleware:
    """A server span that records nothing, in the trace the request's headers carry.

    For a process that samples nothing: the span still has its own valid ids
    (so log lines and forwarded ``traceparent`` headers join the caller's
    trace). It is the span the SDK's tracer makes under its ``ALWAYS_OFF``
    sampler (the caller's trace id and trace state, a new span id, flags
    ``00``), built here directly: going through the tracer, its sampler and
    its context manager cost 4-5 % of a cached page at the gateway.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._ids = RandomIdGenerator()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        parent = propagate.extract(carrier) if carrier else None
        caller = trace.get_current_span(parent).get_span_context()
        span = NonRecordingSpan(
            SpanContext(
                caller.trace_id if caller.is_valid else self._ids.generate_trace_id(),
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.DEFAULT),
                trace_state=caller.trace_state,
            )
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


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
    if tracing_disabled() or not _records_spans:
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

    None when this process records no spans: the caller then adds
    :func:`untraced_client_headers` to each request (the same propagation,
    without building a client span per request).
    """
    if tracing_disabled() or not _records_spans:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config()]


def untraced_client_headers() -> list[tuple[bytes, bytes]]:
    """The current trace context as raw headers, for a request that no client span covers.

    Empty when :func:`aiohttp_trace_configs` installs client spans (their
    instrumentation injects their own context) or tracing is disabled.
    """
    if _records_spans:  # client spans inject their own, or no provider is installed
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
    """A span named ``name`` in the trace that ``headers`` carry (a new one if none)."""
    carrier = {k: v for k, v in (headers or {}).items() if isinstance(v, str)}
    parent = propagate.extract(carrier)
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(
            name, kind=kind, attributes=dict(attributes or {})
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


def add_trace_ids(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, if any."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict
