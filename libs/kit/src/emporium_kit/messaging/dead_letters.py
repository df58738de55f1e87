"""Dead letters: every job and event message that exhausted its retries, in one place.

Whoever gives up on a message (the kit's job retry middleware, the kit's event
consumer) publishes a :class:`DeadLetter` describing it to the durable quorum
queue :data:`DEAD_LETTERS_QUEUE`, through the direct exchange
:data:`DEAD_LETTERS_EXCHANGE`, with publisher confirms, and only then
acknowledges the original. One owner consumes that queue into its own table
and serves the admin routes (ADR 0013); no service reads another's tables.

A dead letter carries the original message exactly (body bytes, headers,
message id), so replay is one publish of it to :attr:`DeadLetter.queue`
through the default exchange (which routes by queue name), and the message's
own idempotency (the job id, the inbox) makes sure it takes effect once.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Self

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

DEAD_LETTERS_EXCHANGE = "emporium.dead-letters"
DEAD_LETTERS_QUEUE = "emporium.dead-letters"
MAX_ERROR_CHARS = 4000

MessageKind = Literal["job", "event"]


def json_headers(headers: Mapping[str, Any]) -> dict[str, JsonValue]:
    """AMQP header values as JSON: bytes as text, dates as ISO strings, tables and arrays
    recursively, decimals and anything else as text."""
    return {str(key): _json_value(value) for key, value in headers.items()}


def _json_value(value: Any) -> JsonValue:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Mapping):
        return json_headers(value)
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)  # decimals and anything else


class DeadLetter(BaseModel):
    """A message given up on, with what is needed to understand and replay it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    service: str = Field(description="The service that gave up on it.")
    queue: str = Field(description="The queue it was consumed from; replay puts it back there.")
    kind: MessageKind
    name: str = Field(description="The job's task name or the event's routing key.")
    message_id: str = Field(description="The job id or the event id (its idempotency key).")
    body_base64: str = Field(description="The original message body, byte for byte.")
    headers: dict[str, JsonValue] = Field(default_factory=dict)
    attempts: int = Field(ge=1)
    first_failed_at: AwareDatetime
    last_failed_at: AwareDatetime
    last_error: str

    @classmethod
    def of(
        cls,
        *,
        service: str,
        queue: str,
        kind: MessageKind,
        name: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, Any],
        attempts: int,
        first_failed_at: datetime | None,
        error: BaseException | str,
    ) -> Self:
        now = datetime.now(UTC)
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(
            service=service,
            queue=queue,
            kind=kind,
            name=name,
            message_id=message_id,
            body_base64=base64.b64encode(body).decode("ascii"),
            headers=json_headers(headers),
            attempts=max(1, attempts),
            first_failed_at=first_failed_at or now,
            last_failed_at=now,
            last_error=text[:MAX_ERROR_CHARS],
        )

    @property
    def body(self) -> bytes:
        return base64.b64decode(self.body_base64)

    def replay_message(self) -> aio_pika.Message:
        """The original message again, to publish to :attr:`queue` via the default exchange."""
        return aio_pika.Message(
            body=self.body,
            headers=dict(self.headers),  # type: ignore[arg-type]
            message_id=self.message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )


async def declare_dead_letters(
    channel: AbstractChannel, queue: str = DEAD_LETTERS_QUEUE
) -> tuple[AbstractExchange, AbstractQueue]:
    """The dead-letter exchange and the durable quorum queue ``queue``, bound by its
    name (idempotent). Every process of one system uses the same ``queue`` (the
    ``DEAD_LETTERS_QUEUE`` setting); separate systems on one broker (parallel
    test runs) use separate ones."""
    exchange = await channel.declare_exchange(
        DEAD_LETTERS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    declared = await channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await declared.bind(exchange, routing_key=queue)
    return exchange, declared


async def publish_dead_letter(
    exchange: AbstractExchange, letter: DeadLetter, queue: str = DEAD_LETTERS_QUEUE
) -> None:
    """Publish ``letter`` to ``queue`` (on a channel with publisher confirms: returns once
    the broker has it)."""
    await exchange.publish(
        aio_pika.Message(
            body=letter.model_dump_json().encode(),
            message_id=str(letter.id),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type="emporium.dead_letter.v1",
        ),
        routing_key=queue,
        mandatory=True,
    )
