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
