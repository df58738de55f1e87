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

import base64
import binascii
from datetime import UTC, datetime

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
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
from emporium_kit.messaging.consuming import QueueConsumer
from emporium_kit.messaging.dead_letters import (
    DEAD_LETTERS_QUEUE,
    MAX_ERROR_CHARS,
    DeadLetter,
    declare_dead_letters,
    json_headers,
)
from emporium_kit.tracing import SpanKind, continue_trace
from ops.domain.dead_letters import IncomingDeadLetter, unparseable_message
from ops.use_cases.ports import UnitOfWorkFactory
from ops.use_cases.record_dead_letter import record_dead_letter

log = structlog.get_logger(__name__)

CONSUMER_NAME = "ops-dead-letters"


class DeadLetterConsumer(QueueConsumer):
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
        super().__init__(
            amqp_url,
            name=CONSUMER_NAME,
            queue=queue,
            prefetch=prefetch,
            connect_timeout=connect_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        self._uow = uow
        self._retry_max_wait = retry_max_wait

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        _, queue = await declare_dead_letters(channel, self._queue_name)
        return queue

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
                headers=json_headers(message.headers or {}),
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
