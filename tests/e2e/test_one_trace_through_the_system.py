"""One request is one trace through the running system, as a collector receives it.

The gateway and users run as real processes exporting over OTLP to the test's
collector stand-in. A password-reset request through the gateway enqueues a
job through the outbox; the relay publishes it and the users worker runs it:
every step (gateway, service, its SQL, the relay's publish, the job and the
job's SQL) must land in the client's trace. The kit's event consumer continues
traces the same way (libs/kit/tests/messaging/test_trace_through_messaging.py).

The system here is one of this module's own: the shared one has just carried
thousands of fuzzing requests whose spans may still queue for export (or be
dropped by the exporter's bounded queue, as OpenTelemetry's batch processor
does by design), which would say nothing about propagation.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from emporium_testkit.otlp import ReceivedSpan

from .conftest import ADMIN_EMAIL, System, running_system


@pytest.fixture(scope="module")
def quiet_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(tmp_path_factory, database="emporium_users_trace", redis_offset=2) as up:
        yield up


@pytest.fixture
async def quiet_api(quiet_system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quiet_system.gateway, timeout=10) as client:
        yield client


SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP's SpanKind numbers


def _complete(spans: list[ReceivedSpan]) -> bool:
    kinds = {(span.service, span.kind) for span in spans}
    return {
        ("gateway", SERVER),
        ("gateway", CLIENT),
        ("users", SERVER),
        ("users", PRODUCER),
        ("users-worker", CONSUMER),
    } <= kinds and any(
        span.service == "users-worker" and span.attributes.get("db.statement") for span in spans
    )


async def test_a_request_that_enqueues_a_job_is_one_trace_to_the_job_and_its_sql(
    quiet_api: httpx.AsyncClient, quiet_system: System
) -> None:
    api, system = quiet_api, quiet_system
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    # The client's own span, made current too: where another test of this
    # process instrumented httpx, its client span continues this trace.
    client = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(client_span, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = otel_context.attach(set_span_in_context(NonRecordingSpan(client)))
    try:
        response = await api.post(
            "/api/v1/auth/password-reset/request",
            json={"email": ADMIN_EMAIL},
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
    finally:
        otel_context.detach(token)
    assert response.status_code == 202

    spans = await asyncio.to_thread(system.traces.wait_for, trace_id, _complete, within=30)

    assert _complete(spans), (
        sorted({(s.service, s.kind, s.name) for s in spans}),
        system.traces.summary(),
    )
    by_id = {span.span_id: span for span in spans}
    consumer = next(s for s in spans if s.kind == CONSUMER)
    publish = by_id[consumer.parent_span_id]
    assert publish.kind == PRODUCER
    assert publish.service == "users"
    assert publish.name.startswith("users.jobs.e2e-")  # "<job queue> publish"
    assert consumer.name.endswith("users.send_password_reset_email")
    users_server = next(s for s in spans if s.service == "users" and s.kind == SERVER)
    assert by_id[users_server.parent_span_id].service == "gateway"
    statements = [s.attributes.get("db.statement", "") for s in spans if s.service == "users"]
    assert any(statement.startswith("INSERT INTO outbox") for statement in statements)
    job_sql = [s.attributes.get("db.statement", "") for s in spans if s.service == "users-worker"]
    # The job claims its id in the inbox first (a CTE that also finds the account).
    assert any("INSERT INTO inbox" in statement for statement in job_sql), job_sql
