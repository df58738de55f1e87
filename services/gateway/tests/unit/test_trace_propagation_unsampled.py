"""With nothing sampled, forwarded requests still carry the caller's trace.

The proxy then has no client-span instrumentation (it would only build spans
that go nowhere), so the forwarding step adds ``traceparent`` itself. Each
case runs in a fresh interpreter: a process installs its tracer provider once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    from emporium_kit.tracing import aiohttp_trace_configs, configure_tracing, instrument_asgi
    from gateway.forwarding import upstream_headers

    configure_tracing("gateway", exporter=sys.argv[1])
    seen = {}

    async def dispatcher(scope, receive, send):
        headers = upstream_headers(scope, None, client_ip="192.0.2.1", cacheable=False)
        seen["traceparent"] = [v.decode() for k, v in headers if k == b"traceparent"]
        seen["client_spans"] = len(aiohttp_trace_configs())

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    scope = {"type": "http", "method": "GET", "path": "/api/v1/users/me",
        "headers": [(b"traceparent", incoming.encode())], "http_version": "1.1",
        "scheme": "http", "query_string": b"", "server": ("t", 80), "client": ("192.0.2.1", 1)}
    asyncio.run(instrument_asgi(dispatcher)(scope, receive, send))
    print("PROBE " + json.dumps(seen))
    """
)


def _probe(exporter: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
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


def test_unsampled_forwarding_adds_the_gateways_own_traceparent_in_the_callers_trace() -> None:
    seen = _probe("none")
    assert seen["client_spans"] == 0
    (traceparent,) = seen["traceparent"]  # type: ignore[misc]
    _version, trace_id, span_id, _flags = str(traceparent).split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert span_id != "b7ad6b7169203331"  # the gateway's server span, not the client's


def test_when_spans_are_recorded_the_client_span_instrumentation_propagates_instead() -> None:
    seen = _probe("console")
    assert seen["client_spans"] == 1
    assert seen["traceparent"] == []  # no second traceparent beside the client span's
