"""Tracing that exports nowhere records nothing, yet log lines keep their trace ids.

Each case runs in a fresh interpreter: a process installs its tracer provider once.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

from emporium_testkit.processes import run_probe

_PROGRAM = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import propagate
    from emporium_kit.tracing import add_trace_ids, configure_tracing, tracer

    configure_tracing("probe", exporter=sys.argv[1])
    with tracer().start_as_current_span("work") as span:
        carrier = {}
        propagate.inject(carrier)
        line = add_trace_ids(None, "info", {})
        print("PROBE " + json.dumps({
            "recording": span.is_recording(),
            "valid": span.get_span_context().is_valid,
            "traceparent": carrier.get("traceparent", ""),
            "log_trace_id": line.get("trace_id", ""),
        }))
    """
)


def _probe(exporter: str, **env: str) -> dict[str, object]:
    result: dict[str, object] = run_probe(_PROGRAM, exporter, **env)
    return result


def _sampled(traceparent: str) -> bool:
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 0x01)


def test_with_no_exporter_nothing_is_recorded_but_ids_propagate_and_reach_the_logs() -> None:
    seen = _probe("none")
    assert seen["recording"] is False
    assert seen["valid"] is True
    traceparent = str(seen["traceparent"])
    assert _sampled(traceparent) is False  # propagated, marked not sampled
    assert traceparent.split("-")[1] == seen["log_trace_id"]


def test_an_exporter_records_every_span() -> None:
    seen = _probe("console")
    assert seen["recording"] is True
    assert _sampled(str(seen["traceparent"])) is True


def test_an_explicit_sampler_wins_even_with_no_exporter() -> None:
    assert _probe("none", OTEL_TRACES_SAMPLER="always_on")["recording"] is True


_FAST_PATH_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    from opentelemetry import trace
    from emporium_kit.tracing import configure_tracing, instrument_asgi

    configure_tracing("probe", exporter=sys.argv[1])
    seen = {}

    async def inner(scope, receive, send):
        span = trace.get_current_span()
        context = span.get_span_context()
        seen.update(kind=type(span).__name__, recording=span.is_recording(),
                    trace_id=format(context.trace_id, "032x"),
                    span_id=format(context.span_id, "016x"))

    async def noop_receive():
        return {"type": "http.request", "body": b""}

    async def noop_send(message):
        pass

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-" + sys.argv[2]
    scope = {"type": "http", "method": "GET", "path": "/api/x",
        "headers": [(b"traceparent", parent.encode())],
        "http_version": "1.1", "scheme": "http", "query_string": b"", "server": ("t", 80),
        "client": ("127.0.0.1", 1)}
    asyncio.run(instrument_asgi(inner)(scope, noop_receive, noop_send))
    print("PROBE " + json.dumps(seen))
    """
)


def _probe_fast_path(exporter: str, flags: str) -> dict[str, object]:
    result: dict[str, object] = run_probe(_FAST_PATH_PROGRAM, exporter, flags)
    return result


def test_a_server_span_outside_fastapi_continues_the_callers_trace_recording_nothing() -> None:
    seen = _probe_fast_path("none", flags="01")  # even a sampled caller's
    assert seen["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["span_id"] not in ("b7ad6b7169203331", "0" * 16)  # a span of its own
    assert seen["recording"] is False


def test_with_an_exporter_the_asgi_instrumentation_records_the_server_span() -> None:
    seen = _probe_fast_path("console", flags="01")
    assert seen["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["recording"] is True


_SERVICE_APP_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    from contextlib import asynccontextmanager
    import httpx
    from fastapi import APIRouter
    from opentelemetry import trace
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from emporium_kit.app import create_service_app
    from emporium_kit.settings import ServiceSettings
    from emporium_kit.tracing import configure_tracing

    exporter = InMemorySpanExporter() if sys.argv[1] == "memory" else None
    configure_tracing("probe", exporter="none", span_exporter=exporter)
    router = APIRouter()

    @router.get("/where/{item}")
    async def where(item: str):
        span = trace.get_current_span()
        return {"trace_id": format(span.get_span_context().trace_id, "032x"),
                "recording": span.is_recording(),
                "instrumented": is_instrumentation_enabled()}

    @asynccontextmanager
    async def lifespan(app):
        yield

    app = create_service_app(service="probe", title="p", version="0", description="",
        settings=ServiceSettings(), lifespan=lifespan, routers=[router], health_checks={})

    async def main():
        transport = httpx.ASGITransport(app=app)
        seen = []
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
            for traceparent in json.loads(sys.argv[2]):
                headers = {"traceparent": traceparent} if traceparent else {}
                seen.append((await client.get("/where/1", headers=headers)).json())
        spans = exporter.get_finished_spans() if exporter else ()
        servers = [{"name": s.name, "trace_id": format(s.context.trace_id, "032x"),
                    "parent": format(s.parent.span_id, "016x") if s.parent else None}
                   for s in spans if s.kind == trace.SpanKind.SERVER]
        print("PROBE " + json.dumps({"requests": seen, "server_spans": servers}))

    asyncio.run(main())
    """
)

_CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-"


def _probe_service_app(
    exporter: str, traceparents: list[str], **env: str
) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = run_probe(
        _SERVICE_APP_PROGRAM, exporter, json.dumps(traceparents), **env
    )
    return result


def test_a_fastapi_service_that_records_nothing_continues_the_trace() -> None:
    seen = _probe_service_app("none", [_CALLER + "01"])
    (request,) = seen["requests"]
    assert request["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert request["recording"] is False


def test_a_recorded_fastapi_request_has_one_server_span_named_by_its_route() -> None:
    seen = _probe_service_app("memory", [_CALLER + "01"])
    (request,) = seen["requests"]
    assert request["recording"] is True
    assert request["instrumented"] is True
    (span,) = seen["server_spans"]
    assert span == {
        "name": "GET /where/{item}",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "parent": "b7ad6b7169203331",
    }


def test_a_ratio_sampler_records_exactly_the_traces_it_samples_and_spares_the_rest() -> None:
    # New traces (no traceparent): the decision made before the instrumentation
    # and the instrumentation's own must agree on the trace id, or the rate
    # would be squared and unrecorded requests would carry recorded ids.
    seen = _probe_service_app(
        "memory",
        [""] * 40,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.5",
    )
    ratio = TraceIdRatioBased(0.5)
    recorded = set()
    for request in seen["requests"]:
        trace_id = int(request["trace_id"], 16)
        sampled = ratio.should_sample(None, trace_id, "GET").decision is Decision.RECORD_AND_SAMPLE
        assert request["recording"] is sampled
        # Not recorded: the request runs with instrumentation suppressed.
        assert request["instrumented"] is sampled
        if sampled:
            recorded.add(request["trace_id"])
    assert 0 < len(recorded) < 40
    assert {span["trace_id"] for span in seen["server_spans"]} == recorded
    assert len(seen["server_spans"]) == len(recorded)
    assert all(span["parent"] is None for span in seen["server_spans"])


def test_a_callers_not_sampled_flag_is_followed_by_a_parent_based_sampler() -> None:
    seen = _probe_service_app(
        "memory",
        [_CALLER + "00", _CALLER + "01"],
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="1.0",
    )
    not_sampled, sampled = seen["requests"]
    assert (not_sampled["recording"], not_sampled["instrumented"]) == (False, False)
    assert not_sampled["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (sampled["recording"], sampled["instrumented"]) == (True, True)
    (span,) = seen["server_spans"]
    assert span["parent"] == "b7ad6b7169203331"


_EDGE_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from emporium_kit.tracing import configure_tracing, instrument_asgi

    exporter = InMemorySpanExporter()
    configure_tracing("edge", exporter="none", span_exporter=exporter)
    seen = []

    async def inner(scope, receive, send):
        carrier = {}
        propagate.inject(carrier)
        seen.append({"recording": trace.get_current_span().is_recording(),
                     "traceparent": carrier["traceparent"]})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    edge = instrument_asgi(inner, sampled_flag_trusted_from=["10.0.0.0/8"])
    for client, traceparent in json.loads(sys.argv[1]):
        scope = {"type": "http", "method": "GET", "path": "/api/x",
            "headers": [(b"traceparent", traceparent.encode())], "http_version": "1.1",
            "scheme": "http", "query_string": b"", "server": ("t", 80), "client": (client, 1)}
        asyncio.run(edge(scope, receive, send))
    print("PROBE " + json.dumps(seen))
    """
)


def _probe_edge(requests: list[tuple[str, str]], **env: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = run_probe(_EDGE_PROGRAM, json.dumps(requests), **env)
    return result


def test_at_the_edge_an_untrusted_callers_sampled_flag_is_not_followed() -> None:
    # A sampler that records no new trace: only a followed flag could record.
    never, always = _probe_edge(
        [("203.0.113.9", _CALLER + "01"), ("10.1.2.3", _CALLER + "01")],
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    assert never["recording"] is False  # a client cannot ask to be recorded
    assert never["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert never["traceparent"].endswith("-00")
    assert always["recording"] is True  # a trusted proxy's decision stands


def test_at_the_edge_an_untrusted_caller_cannot_ask_not_to_be_recorded_either() -> None:
    recorded, followed = _probe_edge(
        [("203.0.113.9", _CALLER + "00"), ("10.1.2.3", _CALLER + "00")],
        OTEL_TRACES_SAMPLER="parentbased_always_on",
    )
    assert recorded["recording"] is True
    assert recorded["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert followed["recording"] is False
