"""What every consumer of a queue shares: connecting, consuming with a prefetch, stopping.

A subclass declares its queue (:meth:`QueueConsumer._declare`) and handles each
message (:meth:`QueueConsumer._handle`), settling it itself. :meth:`stop`
cancels the consumer, lets the messages in hand finish for up to
``shutdown_timeout`` (cancelling the rest, never acknowledged, so they are
delivered again) and closes the connection. The kit's
:class:`~emporium_kit.messaging.consumer.EventConsumer` and the ops service's
dead-letter consumer are built on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)

from .broker import DEFAULT_CONNECT_TIMEOUT, connect

logger = structlog.get_logger()


class QueueConsumer:
    def __init__(
        self,
        amqp_url: str,
        *,
        name: str,
        queue: str,
        prefetch: int = 16,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._amqp_url = amqp_url
        self._name = name
        self._queue_name = queue
        self._prefetch = prefetch
        self._connect_timeout = connect_timeout
        self._shutdown_timeout = shutdown_timeout
        self._log = logger.bind(consumer=name, queue=queue)
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._stopping = False
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        """How many messages are being handled right now."""
        return len(self._in_flight)

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        """Declare what this consumer needs and return the queue to consume."""
        raise NotImplementedError

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        """Handle and settle one message."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect, declare, and consume.

        Raises if the broker cannot be reached now; once started, the robust
        connection reconnects and resumes consuming by itself.
        """
        if self._connection is not None:
            raise RuntimeError(f"consumer {self._name!r} is already started")
        self._stopping = False
        connection = await connect(
            self._amqp_url, connect_timeout=self._connect_timeout, client_name=self._name
        )
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await self._declare(channel)
            self._consumer_tag = await queue.consume(self._on_message)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._queue = connection, queue
        self._log.info("consumer_started")

    async def stop(self) -> None:
        """Stop taking messages, let in-flight handlers finish, then disconnect.

        Handlers still running after ``shutdown_timeout`` are cancelled: their
        work rolls back and their messages, never acked, are delivered again.
        """
        connection, queue, tag = self._connection, self._queue, self._consumer_tag
        if connection is None:
            return
        self._stopping = True
        if queue is not None and tag is not None:
            try:
                await queue.cancel(tag, timeout=self._connect_timeout)
            except Exception as exc:
                self._log.warning("consumer_cancel_failed", error=repr(exc))
        if self._in_flight:
            self._log.info("consumer_draining", in_flight=len(self._in_flight))
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._shutdown_timeout)
            for task in pending:
                task.cancel()
            if pending:
                self._log.warning("consumer_handlers_cancelled", cancelled=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        try:
            await connection.close()
        finally:
            self._connection = self._queue = self._consumer_tag = None
            self._stopped()
            self._log.info("consumer_stopped")

    def _stopped(self) -> None:
        """Forget what :meth:`_declare` kept (a subclass's channel, exchanges)."""

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

    async def _settle(self, outcome: Awaitable[None], action: str) -> None:
        # Settling fails only when the channel is gone; the broker then redelivers
        # the message, and the consumer's idempotency absorbs the repeat.
        try:
            await outcome
        except Exception as exc:
            self._log.warning("consumer_settle_failed", action=action, error=repr(exc))
