"""An OTLP/HTTP trace receiver that keeps nothing: the collector of the tracing bench.

``POST /v1/traces`` takes what an OpenTelemetry SDK's OTLP/HTTP exporter sends
(an ``ExportTraceServiceRequest`` in protobuf, gzip-compressed or not), parses
it, counts its spans by service and answers an empty
``ExportTraceServiceResponse``, as a collector does. ``GET /spans`` says how
many spans arrived from which service, so the bench can show that the
"exported" configurations really exported. Not the tests' collector
(``emporium_testkit.otlp``): that one is a thread of the test process that
keeps every span for the test to read, where the bench needs a process of its
own, pinned to a core, that keeps a count.

    uvicorn bench.baselines.otlp_sink:app --port 18190
"""

from __future__ import annotations

import gzip
from collections import Counter

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"
_EMPTY_ANSWER = ExportTraceServiceResponse().SerializeToString()
received: Counter[str] = Counter()


def _service(resource_spans: object) -> str:
    for attribute in resource_spans.resource.attributes:  # type: ignore[attr-defined]
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return "unknown"


async def export(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    if request.headers.get("content-type", "").split(";")[0] != PROTOBUF:
        return Response(status_code=415)
    try:
        message = ExportTraceServiceRequest.FromString(body)
    except Exception:  # a body that is no ExportTraceServiceRequest
        return Response(status_code=400)
    for resource_spans in message.resource_spans:
        received[_service(resource_spans)] += sum(
            len(scope.spans) for scope in resource_spans.scope_spans
        )
    return Response(_EMPTY_ANSWER, media_type=PROTOBUF)


async def spans(request: Request) -> JSONResponse:
    return JSONResponse(dict(received))


app = Starlette(routes=[Route("/v1/traces", export, methods=["POST"]), Route("/spans", spans)])
