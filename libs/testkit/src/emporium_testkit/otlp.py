"""A stand-in OpenTelemetry collector: receives OTLP/HTTP trace exports from real processes.

Services under test run with ``OTEL_TRACES_EXPORTER=otlp`` and their exporter
pointed here, exactly as in production with a real collector; the test reads
back the spans each process sent (protobuf ``ExportTraceServiceRequest``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


class OtlpCollector:
    """Collects spans on ``127.0.0.1:<port>``; :meth:`env` configures a child process."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if self.path != TRACES_PATH:
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector._add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OtlpCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self) -> dict[str, str]:
        """Environment that makes a service export its spans here, promptly."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{self.port}{TRACES_PATH}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            # Fuzzing sends thousands of requests: keep their spans rather than drop them.
            "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
        }

    def _add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            service = next(
                (
                    attribute.value.string_value
                    for attribute in resource_spans.resource.attributes
                    if attribute.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        with self._lock:
            self._spans.extend(received)

    def summary(self) -> dict[str, int]:
        """How many spans each service has sent so far (for failure messages)."""
        with self._lock:
            counts: dict[str, int] = {}
            for span in self._spans:
                counts[span.service] = counts.get(span.service, 0) + 1
            return counts

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def wait_for(
        self, trace_id: str, predicate: object, *, within: float = 10.0
    ) -> list[ReceivedSpan]:
        """The trace's spans once ``predicate(spans)`` holds (or after ``within`` seconds)."""
        assert callable(predicate)
        deadline = time.monotonic() + within
        while True:
            spans = self.spans(trace_id)
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)
