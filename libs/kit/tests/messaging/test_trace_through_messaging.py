"""One request is one trace: HTTP, its SQL, the outbox relay's publish and the consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from emporium_kit.app import create_service_app
from emporium_kit.database import DatabaseSettings, create_engine, create_session_factory
from emporium_kit.messaging import EventEnvelope
from emporium_kit.messaging.consumer import EventConsumer
from emporium_kit.messaging.outbox import add_event
from emporium_kit.messaging.relay import OutboxRelay
from emporium_kit.settings import ServiceSettings
from emporium_kit.tracing import continue_trace
from emporium_testkit.tracing import span_recorder

from .support import AMQP_URL, POSTGRES_URL, MessagingTables, wait_until

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_request_that_publishes_an_event_is_one_trace_to_its_consumer(
    tables: MessagingTables, routing_key: str, queue_names: Any
) -> None:
    recorder = span_recorder()  # before the engine: engine creation is instrumented
    engine = create_engine(DatabaseSettings(url=POSTGRES_URL), application_name="kit-trace-test")
    sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)
    router = APIRouter()

    @router.post("/things", status_code=202)
    async def make_thing() -> dict[str, str]:
        async with sessions() as session, session.begin():
            message_id = await add_event(session, tables.outbox, routing_key, {"n": 1})
        return {"id": str(message_id)}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_service_app(
        service="kit-trace-test",
        title="t",
        version="0",
        description="",
        settings=ServiceSettings(),
        lifespan=lifespan,
        routers=[router],
        health_checks={},
    )
    handled: list[EventEnvelope] = []

    async def handler(_: AsyncSession, envelope: EventEnvelope) -> None:
        handled.append(envelope)

    consumer = EventConsumer(
        AMQP_URL,
        queue=queue_names(),
        routing_keys=[routing_key],
        handler=handler,
        session_factory=sessions,
        inbox=tables.inbox,
        consumer_name="kit-trace-test",
    )
    relay = OutboxRelay(engine, tables.outbox, AMQP_URL)
    await consumer.start()
    recorder.clear()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
            response = await client.post(
                "/things",
                headers={"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"},
            )
        assert response.status_code == 202
        assert await relay.publish_pending() == 1
        await wait_until(lambda: len(handled) == 1)
        await asyncio.sleep(0.05)  # the consumer span ends after the handler returns
    finally:
        await consumer.stop()
        await relay.close()
        await engine.dispose()

    spans = [span for span in recorder.get_finished_spans() if span.context is not None]
    in_trace = [span for span in spans if format(span.context.trace_id, "032x") == CLIENT_TRACE]
    kinds = {span.kind for span in in_trace}
    by_name = {span.name: span for span in in_trace}
    publish = by_name[f"{routing_key} publish"]
    process = by_name[f"{routing_key} process"]
    server = next(s for s in in_trace if s.kind == SpanKind.SERVER)
    statements = [s for s in in_trace if s.attributes and "db.statement" in s.attributes]

    assert {SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER} <= kinds
    assert server.name.startswith("POST")
    # The outbox INSERT in the request, the relay's SELECT/UPDATE, the inbox INSERT.
    assert any("INSERT INTO outbox_" in str(s.attributes["db.statement"]) for s in statements)
    assert any("INSERT INTO inbox_" in str(s.attributes["db.statement"]) for s in statements)
    assert process.parent is not None
    assert publish.context is not None
    assert process.parent.span_id == publish.context.span_id
    assert handled[0].headers["traceparent"].split("-")[1] == CLIENT_TRACE


async def test_a_running_relay_starts_no_trace_of_its_own_yet_publishes_in_the_stored_one(
    tables: MessagingTables, routing_key: str
) -> None:
    recorder = span_recorder()  # records every new trace (parentbased_always_on)
    engine = create_engine(DatabaseSettings(url=POSTGRES_URL), application_name="kit-trace-test")
    sessions = create_session_factory(engine)
    relay = OutboxRelay(engine, tables.outbox, AMQP_URL, poll_interval=0.02)
    recorder.clear()
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # many idle passes: each one a SELECT
        idle = [s for s in recorder.get_finished_spans() if s.context is not None]
        async with sessions() as session, session.begin():
            # Stored with the trace of the request that wrote it (none here: this one).
            with continue_trace("write", {"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"},
                                kind=SpanKind.SERVER):  # fmt: skip
                await add_event(session, tables.outbox, routing_key, {"n": 2})
        await wait_until(
            lambda: any(s.name == f"{routing_key} publish" for s in recorder.get_finished_spans())
        )
    finally:
        await relay.stop()
        await running
        await engine.dispose()

    assert idle == []
    publish = next(s for s in recorder.get_finished_spans() if s.name == f"{routing_key} publish")
    assert publish.context is not None
    assert format(publish.context.trace_id, "032x") == CLIENT_TRACE


def test_work_continued_from_a_trace_not_sampled_runs_with_instrumentation_suppressed() -> None:
    span_recorder()  # parent-based: a carried "not sampled" is followed
    carried = {
        flags: {"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-{flags}"}
        for flags in ("00", "01")
    }
    with continue_trace("handle", carried["00"], kind=SpanKind.CONSUMER) as span:
        assert not span.is_recording()
        assert not is_instrumentation_enabled()  # its SQL would build spans for nothing
    with continue_trace("handle", carried["01"], kind=SpanKind.CONSUMER) as span:
        assert span.is_recording()
        assert is_instrumentation_enabled()
