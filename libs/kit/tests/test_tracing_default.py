"""Tracing that exports nowhere records nothing, yet log lines keep their trace ids.

Each case runs in a fresh interpreter: a process installs its tracer provider once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, exporter],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (line,) = (line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    result: dict[str, object] = json.loads(line.removeprefix("PROBE "))
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
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _FAST_PATH_PROGRAM, exporter, flags],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (line,) = (line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    result: dict[str, object] = json.loads(line.removeprefix("PROBE "))
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
    from emporium_kit.app import create_service_app
    from emporium_kit.settings import ServiceSettings
    from emporium_kit.tracing import configure_tracing

    configure_tracing("probe", exporter=sys.argv[1])
    router = APIRouter()

    @router.get("/where")
    async def where():
        span = trace.get_current_span()
        return {"trace_id": format(span.get_span_context().trace_id, "032x"),
                "recording": span.is_recording()}

    @asynccontextmanager
    async def lifespan(app):
        yield

    app = create_service_app(service="probe", title="p", version="0", description="",
        settings=ServiceSettings(), lifespan=lifespan, routers=[router], health_checks={})

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
            parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            response = await client.get("/where", headers={"traceparent": parent})
        layers = [m.cls.__name__ for m in app.user_middleware]
        print("PROBE " + json.dumps({**response.json(), "outermost": layers[0]}))

    asyncio.run(main())
    """
)


def _probe_service_app(exporter: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _SERVICE_APP_PROGRAM, exporter],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (line,) = (line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    result: dict[str, object] = json.loads(line.removeprefix("PROBE "))
    return result


def test_a_fastapi_service_that_records_nothing_continues_the_trace_without_instrumentation() -> (
    None
):
    seen = _probe_service_app("none")
    assert seen["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["recording"] is False
    assert seen["outermost"] == "TraceContextMiddleware"


def test_a_fastapi_service_that_exports_gets_the_fastapi_instrumentation() -> None:
    seen = _probe_service_app("console")
    assert seen["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["recording"] is True
    assert seen["outermost"] != "TraceContextMiddleware"
