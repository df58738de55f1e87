"""Spans recorded in memory, for tests that check what a trace holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from emporium_kit.tracing import configure_tracing

_recorder: InMemorySpanExporter | None = None


def span_recorder() -> InMemorySpanExporter:
    """This process's in-memory exporter; the first call installs the tracer provider.

    Engines created after the first call are traced (the SQLAlchemy
    instrumentation wraps engine creation), so a test calls this first.
    """
    global _recorder
    if _recorder is None:
        _recorder = InMemorySpanExporter()
        configure_tracing("emporium-tests", exporter="none", span_exporter=_recorder)
    return _recorder


def run_probe(program: str, *args: str, **env: str) -> Any:
    """Runs ``program`` in a fresh interpreter and returns what it printed after ``PROBE ``.

    For tests of how a process sets tracing up: a process installs its tracer
    provider once, so each configuration needs its own interpreter. The
    environment is this one's without any ``OTEL_`` variable, plus ``env``.
    ``program`` prints one line ``PROBE <json>``.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env)
    done = subprocess.run(  # noqa: S603 - the test's own program
        [sys.executable, "-c", program, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (line,) = (line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))
