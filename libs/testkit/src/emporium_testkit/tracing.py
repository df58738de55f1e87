"""Spans recorded in memory, for tests that check what a trace holds."""

from __future__ import annotations

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
