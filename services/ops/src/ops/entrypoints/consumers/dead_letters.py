"""The dead-letter consumer: every service's dead letters into ops' table.

Each message on the dead-letters queue is parsed as the kit's
:class:`~emporium_kit.messaging.dead_letters.DeadLetter`, stored once by its id
(``INSERT ... ON CONFLICT DO NOTHING``), committed, and only then acknowledged,
so a crash in between delivers it again and the repeat is absorbed.

While the database is down the message is held, unacknowledged, and the store
is retried with jittered exponential backoff: no requeue (which would spin the
message through the broker and count a delivery each time) and no tight loop.
Any other failure to store is retried the same way and logged as an error, so
nothing is dropped: this queue has no dead-letter queue of its own.

A body that does not parse is no dead letter, but nothing else holds it once
it is acknowledged, so it is stored as one (``unparseable_message``: kind
``event``, name ``unparseable``, the raw body and the parse error) instead of
being dropped or rejected.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_random_exponential,
)

from emporium_kit.database import is_unavailable
from emporium_kit.messaging import connect
from emporium_kit.messaging.dead_letters import (
    DEAD_LETTERS_QUEUE,
    MAX_ERROR_CHARS,
    DeadLetter,
    declare_dead_letters,
)
from emporium_kit.tracing import SpanKind, continue_trace
from ops.domain.dead_letters import IncomingDeadLetter, unparseable_message
from ops.use_cases.ports import UnitOfWorkFactory
from ops.use_cases.record_dead_letter import record_dead_letter

log = structlog.get_logger(__name__)

CONSUMER_NAME = "ops-dead-letters"


class DeadLetterConsumer:
    """Consumes the dead-letters queue ``queue`` (``DEAD_LETTERS_QUEUE``; tests name their own)."""

    def __init__(
        self,
        amqp_url: str,
        *,
        uow: UnitOfWorkFactory,
        queue: str = DEAD_LETTERS_QUEUE,
        prefetch: int = 16,
        connect_timeout: float = 5.0,
        shutdown_timeout: float = 10.0,
        retry_max_wait: float = 30.0,
    ) -> None:
        self._amqp_url = amqp_url
        self._uow = uow
        self._queue_name = queue
        self._prefetch = prefetch
        self._connect_timeout = connect_timeout
        self._shutdown_timeout = shutdown_timeout
        self._retry_max_wait = retry_max_wait
        self._log = log.bind(consumer=CONSUMER_NAME, queue=queue)
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._stopping = False
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        """How many dead letters are being stored right now."""
        return len(self._in_flight)

    async def start(self) -> None:
        """Connect, declare the dead-letter exchange and ``queue`` (the kit's), and consume.

        Raises if the broker cannot be reached now; once started, the robust
        connection reconnects and resumes consuming by itself.
        """
        if self._connection is not None:
            raise RuntimeError("the dead-letter consumer is already started")
        self._stopping = False
        connection = await connect(
            self._amqp_url, connect_timeout=self._connect_timeout, client_name=CONSUMER_NAME
        )
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            _, queue = await declare_dead_letters(channel, self._queue_name)
            self._consumer_tag = await queue.consume(self._on_message)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._queue = connection, queue
        self._log.info("dead_letter_consumer_started")

    async def stop(self) -> None:
        """Stop taking messages, let stores in progress finish, then disconnect.

        A store still running (retrying against a database that is down) after
        ``shutdown_timeout`` is cancelled; its message, never acknowledged, is
        delivered again.
        """
        connection, queue, tag = self._connection, self._queue, self._consumer_tag
        if connection is None:
            return
        self._stopping = True
        if queue is not None and tag is not None:
            try:
                await queue.cancel(tag, timeout=self._connect_timeout)
            except Exception as exc:
                self._log.warning("dead_letter_consumer_cancel_failed", error=repr(exc))
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._shutdown_timeout)
            for task in pending:
                task.cancel()
            if pending:
                self._log.warning("dead_letter_stores_cancelled", cancelled=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        try:
            await connection.close()
        finally:
            self._connection = self._queue = self._consumer_tag = None
            self._log.info("dead_letter_consumer_stopped")

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
        letter = self._parse(message)
        with (
            continue_trace(
                f"{self._queue_name} process",
                message.headers,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.destination.name": self._queue_name,
                    "messaging.message.id": str(letter.id),
                    "messaging.consumer.group.name": CONSUMER_NAME,
                },
            ),
            structlog.contextvars.bound_contextvars(
                dead_letter_id=str(letter.id),
                dead_letter_service=letter.service,
                dead_letter_queue=letter.queue,
            ),
        ):
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_random_exponential(multiplier=0.5, max=self._retry_max_wait),
                stop=stop_never,
                before_sleep=self._log_store_failure,
            ):
                with attempt:
                    added = await record_dead_letter(self._uow, letter)
            self._log.info("dead_letter_stored" if added else "dead_letter_duplicate_skipped")
            await self._settle(message.ack(), "ack")

    def _log_store_failure(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else None
        if error is not None and is_unavailable(error):
            self._log.warning(
                "dead_letter_store_deferred",
                attempt=state.attempt_number,
                retry_in=wait,
                error=repr(error),
            )
        else:
            self._log.error(
                "dead_letter_store_failed",
                attempt=state.attempt_number,
                retry_in=wait,
                error=repr(error),
            )

    def _parse(self, message: AbstractIncomingMessage) -> IncomingDeadLetter:
        try:
            letter = DeadLetter.model_validate_json(message.body)
            body = base64.b64decode(letter.body_base64, validate=True)
        except (ValidationError, binascii.Error) as exc:
            self._log.error(
                "dead_letter_unparseable",
                message_id=message.message_id,
                app_id=message.app_id,
                error=str(exc)[:500],
            )
            return unparseable_message(
                body=message.body,
                message_id=message.message_id,
                headers=_json_headers(message.headers or {}),
                service=message.app_id,
                queue=self._queue_name,
                error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS],
                at=datetime.now(UTC),
            )
        return IncomingDeadLetter(
            id=letter.id,
            service=letter.service,
            queue=letter.queue,
            kind=letter.kind,
            name=letter.name,
            message_id=letter.message_id,
            body=body,
            headers=dict(letter.headers),
            attempts=letter.attempts,
            first_failed_at=letter.first_failed_at,
            last_failed_at=letter.last_failed_at,
            last_error=letter.last_error,
        )

    async def _settle(self, outcome: Awaitable[None], action: str) -> None:
        # Settling fails only when the channel is gone; the broker then delivers
        # the message again, and the stored id absorbs the repeat.
        try:
            await outcome
        except Exception as exc:
            self._log.warning("dead_letter_settle_failed", action=action, error=repr(exc))


def _json_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): _json_value(value) for key, value in headers.items()}


def _json_value(value: Any) -> Any:
    """An AMQP header value as JSON: bytes as text, dates as ISO strings, tables and
    arrays recursively, decimals and anything else as text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return _json_headers(value)
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)
