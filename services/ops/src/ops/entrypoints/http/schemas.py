"""Response bodies of the dead-letter routes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, Field, JsonValue, PlainSerializer, WithJsonSchema

from ops.domain.dead_letters import StoredDeadLetter


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _payload(body: bytes) -> JsonValue:
    try:
        payload: JsonValue = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload


class DeadLetterOut(BaseModel):
    id: UUID
    service: str = Field(description="The service that gave up on the message.")
    queue: str = Field(description="The queue it was consumed from; replay puts it back there.")
    kind: Literal["job", "event"]
    name: str = Field(
        description="The job's task name or the event's routing key; `unparseable` for a "
        "message that reached the dead-letters queue without being a dead letter."
    )
    message_id: str = Field(description="The job id or event id (its idempotency key).")
    headers: dict[str, JsonValue]
    payload: JsonValue = Field(description="The body decoded as JSON; null when it is not JSON.")
    body_base64: str = Field(description="The original body, byte for byte, in base64.")
    attempts: int
    first_failed_at: Timestamp
    last_failed_at: Timestamp
    last_error: str
    received_at: Timestamp = Field(description="When ops stored it.")
    replayed_at: Timestamp | None = Field(description="When it was replayed; null until then.")
    replay_count: int

    @classmethod
    def of(cls, letter: StoredDeadLetter) -> DeadLetterOut:
        return cls(
            id=letter.id,
            service=letter.service,
            queue=letter.queue,
            kind=letter.kind,
            name=letter.name,
            message_id=letter.message_id,
            headers=letter.headers,
            payload=_payload(letter.body),
            body_base64=base64.b64encode(letter.body).decode("ascii"),
            attempts=letter.attempts,
            first_failed_at=letter.first_failed_at,
            last_failed_at=letter.last_failed_at,
            last_error=letter.last_error,
            received_at=letter.received_at,
            replayed_at=letter.replayed_at,
            replay_count=letter.replay_count,
        )


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None
