"""An idempotent event consumer: each message id is handled at most once per consumer.

For each delivery the consumer opens a transaction, records the message id in the
inbox (``INSERT ... ON CONFLICT DO NOTHING``) and, only if the id is new, runs the
handler in that same transaction; it acks after the commit. A redelivery of a
message whose transaction committed is acked without calling the handler again.
A handler error rolls back (inbox row included) and requeues the message; the
quorum queue counts deliveries and dead-letters it past its delivery limit. A body
that is not an :class:`EventEnvelope` is rejected at once and so dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from emporium_kit.tracing import SpanKind, continue_trace

from .broker import DEFAULT_CONNECT_TIMEOUT, connect, declare_quorum_queue
from .envelope import REQUEST_ID_HEADER, EventEnvelope, trace_id_from_traceparent

logger = structlog.get_logger()

EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
"""Handles one event inside the consumer's transaction. It must not commit: the
consumer commits after it returns (and rolls back if it raises)."""


class EventConsumer:
    """Consumes ``routing_keys`` from the quorum queue ``queue`` with ``handler``."""

    def __init__(
        self,
        amqp_url: str,
        *,
        queue: str,
        routing_keys: Sequence[str],
        handler: EventHandler,
        session_factory: async_sessionmaker[AsyncSession],
        inbox: sa.Table,
        consumer_name: str,
        prefetch: int = 16,
        delivery_limit: int = 10,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._amqp_url = amqp_url
        self._queue_name = queue
        self._routing_keys = list(routing_keys)
        self._handler = handler
        self._session_factory = session_factory
        self._inbox = inbox
        self._consumer_name = consumer_name
        self._prefetch = prefetch
        self._delivery_limit = delivery_limit
        self._connect_timeout = connect_timeout
        self._shutdown_timeout = shutdown_timeout
        self._log = logger.bind(consumer=consumer_name, queue=queue)

        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._stopping = False
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        """How many messages are being handled right now."""
        return len(self._in_flight)

    async def start(self) -> None:
        """Connect, declare the queue, its bindings and dead-letter queue, and consume.

        Raises if the broker cannot be reached now; once started, the robust
        connection reconnects and resumes consuming by itself.
        """
        if self._connection is not None:
            raise RuntimeError(f"consumer {self._consumer_name!r} is already started")
        self._stopping = False
        connection = await connect(
            self._amqp_url, connect_timeout=self._connect_timeout, client_name=self._consumer_name
        )
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await declare_quorum_queue(
                channel,
                self._queue_name,
                routing_keys=self._routing_keys,
                delivery_limit=self._delivery_limit,
            )
            self._consumer_tag = await queue.consume(self._on_message)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._queue = connection, queue
        self._log.info("event_consumer_started", routing_keys=self._routing_keys)

    async def stop(self) -> None:
        """Stop taking messages, let in-flight handlers finish, then disconnect.

        Handlers still running after ``shutdown_timeout`` are cancelled: their
        transactions roll back and their messages, never acked, are redelivered.
        """
        connection, queue, tag = self._connection, self._queue, self._consumer_tag
        if connection is None:
            return
        self._stopping = True
        if queue is not None and tag is not None:
            try:
                await queue.cancel(tag, timeout=self._connect_timeout)
            except Exception as exc:
                self._log.warning("event_consumer_cancel_failed", error=repr(exc))
        if self._in_flight:
            self._log.info("event_consumer_draining", in_flight=len(self._in_flight))
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._shutdown_timeout)
            for task in pending:
                task.cancel()
            if pending:
                self._log.warning("event_consumer_handlers_cancelled", cancelled=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        try:
            await connection.close()
        finally:
            self._connection = self._queue = self._consumer_tag = None
            self._log.info("event_consumer_stopped")

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            # Arrived between stop() and the broker's cancel-ok: hand it back untouched.
            await self._settle(message.nack(requeue=True), "nack")
            return
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._handle(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = EventEnvelope.from_json(message.body)
        except ValueError as exc:
            self._log.error(
                "event_rejected_unparseable",
                message_id=message.message_id,
                routing_key=message.routing_key,
                error=str(exc)[:500],
            )
            await self._settle(message.reject(requeue=False), "reject")
            return

        with (
            continue_trace(
                f"{envelope.type} process",
                {**envelope.headers, **(message.headers or {})},
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.destination.name": self._queue_name,
                    "messaging.message.id": str(envelope.id),
                    "messaging.consumer.group.name": self._consumer_name,
                },
            ),
            structlog.contextvars.bound_contextvars(**self._log_context(envelope, message)),
        ):
            try:
                handled = await self._process(envelope)
            except Exception:
                self._log.exception(
                    "event_handler_failed",
                    delivery_count=(message.headers or {}).get("x-delivery-count"),
                    delivery_limit=self._delivery_limit,
                )
                await self._settle(message.nack(requeue=True), "nack")
                return
            if handled:
                self._log.debug("event_handled")
            else:
                self._log.info("event_duplicate_skipped")
            await self._settle(message.ack(), "ack")

    async def _process(self, envelope: EventEnvelope) -> bool:
        """Run the handler once per message id; False if it already ran."""
        inbox = self._inbox
        async with self._session_factory() as session, session.begin():
            first_time = await session.execute(
                pg_insert(inbox)
                .values(consumer=self._consumer_name, message_id=envelope.id)
                .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.message_id])
                .returning(inbox.c.message_id)
            )
            if first_time.first() is None:
                return False
            await self._handler(session, envelope)
        return True

    async def _settle(self, outcome: Awaitable[None], action: str) -> None:
        # Settling fails only when the channel is gone; the broker then redelivers
        # the message, and the inbox absorbs the repeat.
        try:
            await outcome
        except Exception as exc:
            self._log.warning("event_settle_failed", action=action, error=repr(exc))

    def _log_context(
        self, envelope: EventEnvelope, message: AbstractIncomingMessage
    ) -> dict[str, str]:
        context = {"message_id": str(envelope.id), "event_type": envelope.type}
        request_id = envelope.request_id
        if request_id is None:
            header = (message.headers or {}).get(REQUEST_ID_HEADER)
            request_id = header if isinstance(header, str) else None
        if request_id is not None:
            context["request_id"] = request_id
        trace_id = trace_id_from_traceparent(envelope.traceparent)
        if trace_id is not None:
            context["trace_id"] = trace_id
        return context
