"""A request that is not recorded is still forwarded in the caller's trace.

With nothing sampled the proxy has no client-span instrumentation (it would
only build spans that go nowhere); with some requests sampled, it is
suppressed for the others. Either way the forwarding step adds ``traceparent``
itself, flagged not sampled, so the service follows the gateway's decision.
Each case runs in a fresh interpreter: a process installs its tracer provider
once.
"""

from __future__ import annotations

import textwrap

from emporium_testkit.processes import run_probe

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

    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-" + sys.argv[2]
    scope = {"type": "http", "method": "GET", "path": "/api/v1/users/me",
        "headers": [(b"traceparent", incoming.encode())], "http_version": "1.1",
        "scheme": "http", "query_string": b"", "server": ("t", 80), "client": ("192.0.2.1", 1)}
    asyncio.run(instrument_asgi(dispatcher)(scope, receive, send))
    print("PROBE " + json.dumps(seen))
    """
)


def _probe(exporter: str, flags: str = "01", **env: str) -> dict[str, object]:
    result: dict[str, object] = run_probe(_PROGRAM, exporter, flags, **env)
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


def test_a_request_sampled_out_by_an_exporting_gateway_is_forwarded_flagged_not_sampled() -> None:
    # Parent-based sampling follows the caller's "not sampled": the client-span
    # instrumentation is installed (some requests are recorded) but suppressed
    # for this one, so the forwarding step propagates the gateway's own span.
    seen = _probe(
        "console",
        flags="00",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="1.0",
    )
    assert seen["client_spans"] == 1
    (traceparent,) = seen["traceparent"]  # type: ignore[misc]
    _version, trace_id, span_id, flags = str(traceparent).split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert span_id != "b7ad6b7169203331"
    assert flags == "00"
