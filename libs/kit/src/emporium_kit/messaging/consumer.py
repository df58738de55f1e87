"""An idempotent event consumer: each message id is handled at most once per consumer.

For each delivery the consumer opens a transaction, records the message id in the
inbox (``INSERT ... ON CONFLICT DO NOTHING``) and, only if the id is new, runs the
handler in that same transaction; it acks after the commit. A redelivery of a
message whose transaction committed is acked without calling the handler again.

A handler error rolls back (inbox row included). If the error can pass
(:func:`emporium_kit.retrying.is_retryable`) and attempts remain, a copy of the
message goes to ``<queue>.retry`` with a backoff (its per-message TTL; tenacity's
full-jitter exponential) and comes back to ``<queue>`` when it expires, counting
its attempts and first failure in headers. Otherwise, or after ``max_attempts``,
the message becomes a :class:`~.dead_letters.DeadLetter` in the system's one
dead-letter list, with its last error. A body that is not an
:class:`EventEnvelope` is dead-lettered at once. Each time the copy is
published (with publisher confirms) before the original is acknowledged; if
that publish fails, the original is requeued instead. The quorum queue's
``delivery_limit`` stays as the broker's own safety net for a message whose
handling crashes the process every time (it then lands in ``<queue>.dlq``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import aio_pika
import sqlalchemy as sa
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from emporium_kit.retrying import backoff_seconds, is_retryable
from emporium_kit.tracing import SpanKind, continue_trace

from .broker import DEFAULT_CONNECT_TIMEOUT, declare_quorum_queue
from .consuming import QueueConsumer
from .dead_letters import DEAD_LETTERS_QUEUE, DeadLetter, declare_dead_letters, publish_dead_letter
from .envelope import REQUEST_ID_HEADER, EventEnvelope, trace_id_from_traceparent

logger = structlog.get_logger()

ATTEMPTS_HEADER = "x-emporium-attempts"
FIRST_FAILED_HEADER = "x-emporium-first-failed-at"


def retry_queue_name(queue: str) -> str:
    return f"{queue}.retry"


EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
"""Handles one event inside the consumer's transaction. It must not commit: the
consumer commits after it returns (and rolls back if it raises)."""


class EventConsumer(QueueConsumer):
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
        max_attempts: int = 5,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 60.0,
        service: str = "unknown",
        dead_letters_queue: str = DEAD_LETTERS_QUEUE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        shutdown_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            amqp_url,
            name=consumer_name,
            queue=queue,
            prefetch=prefetch,
            connect_timeout=connect_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        self._routing_keys = list(routing_keys)
        self._handler = handler
        self._session_factory = session_factory
        self._inbox = inbox
        self._consumer_name = consumer_name
        self._delivery_limit = delivery_limit
        self._max_attempts = max(1, max_attempts)
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._service = service
        self._dead_letters_queue = dead_letters_queue
        self._channel: AbstractChannel | None = None
        self._dead_letters: AbstractExchange | None = None

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        """The quorum queue with its bindings and broker-side dead-letter queue, its
        retry queue, and the system's dead-letter list."""
        queue = await declare_quorum_queue(
            channel,
            self._queue_name,
            routing_keys=self._routing_keys,
            delivery_limit=self._delivery_limit,
        )
        # Retries wait here until their TTL expires, then return to the queue.
        await channel.declare_queue(
            retry_queue_name(self._queue_name),
            durable=True,
            arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self._queue_name,
            },
        )
        self._dead_letters, _ = await declare_dead_letters(channel, self._dead_letters_queue)
        self._channel = channel
        self._log.info("event_consumer_declared", routing_keys=self._routing_keys)
        return queue

    def _stopped(self) -> None:
        self._channel = self._dead_letters = None

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
            await self._give_up(message, exc, name=message.routing_key or "unparseable")
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
            except Exception as exc:
                attempt = self._attempts(message) + 1
                self._log.exception(
                    "event_handler_failed", attempt=attempt, max_attempts=self._max_attempts
                )
                if is_retryable(exc) and attempt < self._max_attempts:
                    await self._retry_later(message, attempt)
                else:
                    await self._give_up(message, exc, name=envelope.type, message_id=envelope.id)
                return
            if handled:
                self._log.debug("event_handled")
            else:
                self._log.info("event_duplicate_skipped")
            await self._settle(message.ack(), "ack")

    @staticmethod
    def _attempts(message: AbstractIncomingMessage) -> int:
        value = (message.headers or {}).get(ATTEMPTS_HEADER, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    async def _retry_later(self, message: AbstractIncomingMessage, attempt: int) -> None:
        """Send a copy to the retry queue with a backoff, then ack the original."""
        delay = backoff_seconds(attempt, base=self._retry_base_delay, cap=self._retry_max_delay)
        headers = dict(message.headers or {})
        headers[ATTEMPTS_HEADER] = attempt
        headers.setdefault(FIRST_FAILED_HEADER, datetime.now(UTC).isoformat())
        copy = aio_pika.Message(
            body=message.body,
            headers=headers,
            message_id=message.message_id,
            type=message.type,
            content_type=message.content_type,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=timedelta(seconds=max(delay, 0.001)),
        )
        try:
            assert self._channel is not None
            await self._channel.default_exchange.publish(
                copy, routing_key=retry_queue_name(self._queue_name)
            )
        except Exception as exc:  # no confirm: keep the original instead
            self._log.warning("event_retry_publish_failed", error=repr(exc))
            await self._settle(message.nack(requeue=True), "nack")
            return
        self._log.info("event_retry_scheduled", attempt=attempt, retry_in=round(delay, 3))
        await self._settle(message.ack(), "ack")

    async def _give_up(
        self,
        message: AbstractIncomingMessage,
        error: BaseException,
        *,
        name: str,
        message_id: object | None = None,
    ) -> None:
        """Publish the message to the dead letters with its last error, then ack it."""
        headers = dict(message.headers or {})
        first_failed = headers.pop(FIRST_FAILED_HEADER, None)
        attempts = self._attempts(message) + 1
        headers.pop(ATTEMPTS_HEADER, None)
        letter = DeadLetter.of(
            service=self._service,
            queue=self._queue_name,
            kind="event",
            name=name,
            message_id=str(message_id or message.message_id or ""),
            body=message.body,
            headers=headers,
            attempts=attempts,
            first_failed_at=datetime.fromisoformat(first_failed)
            if isinstance(first_failed, str)
            else None,
            error=error,
        )
        try:
            assert self._dead_letters is not None
            await publish_dead_letter(self._dead_letters, letter, self._dead_letters_queue)
        except Exception as exc:  # no confirm: keep the original instead
            self._log.warning("event_dead_letter_publish_failed", error=repr(exc))
            await self._settle(message.nack(requeue=True), "nack")
            return
        self._log.error("event_dead_lettered", attempts=attempts, dead_letter_id=str(letter.id))
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
