"""The envelope every integration event travels in, on the wire and in the outbox."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self, TypeAlias

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

JSONValue: TypeAlias = JsonValue
"""Any value that JSON can represent: the only kind of value a payload may hold."""

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"

# AMQP routing keys are short strings (at most 255 bytes). A routing key names one
# fact, so wildcard words (`*`, `#`) and whitespace are not allowed in it.
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?P<trace_id>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def validate_routing_key(routing_key: str) -> str:
    """Return ``routing_key`` when it names one event (e.g. ``users.user_registered.v1``)."""
    if len(routing_key.encode()) > 255 or not _ROUTING_KEY.fullmatch(routing_key):
        raise ValueError(
            f"invalid routing key {routing_key!r}: expected dot-separated words such as "
            "'users.user_registered.v1' (letters, digits, '_' or '-'; at most 255 bytes)"
        )
    return routing_key


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def trace_id_from_traceparent(traceparent: str | None) -> str | None:
    """The trace id inside a W3C ``traceparent`` header, or None if it is malformed."""
    if traceparent is None:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
    return match.group("trace_id") if match else None


class EventEnvelope(BaseModel):
    """One integration event: a fact in the past tense, with its identity and context.

    ``id`` is the message id (consumers deduplicate on it), ``type`` the routing key,
    ``headers`` carries ``x-request-id`` and W3C ``traceparent`` when the producer had them.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID
    type: Annotated[str, AfterValidator(validate_routing_key)]
    occurred_at: Annotated[AwareDatetime, AfterValidator(_to_utc)]
    payload: dict[str, JSONValue]
    headers: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        routing_key: str,
        payload: dict[str, JSONValue],
        *,
        headers: dict[str, str] | None = None,
    ) -> Self:
        """A new event that happened now, with a fresh message id."""
        return cls(
            id=uuid.uuid4(),
            type=routing_key,
            occurred_at=datetime.now(UTC),
            payload=payload,
            headers=headers or {},
        )

    @property
    def request_id(self) -> str | None:
        return self.headers.get(REQUEST_ID_HEADER)

    @property
    def traceparent(self) -> str | None:
        return self.headers.get(TRACEPARENT_HEADER)

    def to_json(self) -> bytes:
        """The UTF-8 JSON body published to the broker."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """Parse a body produced by :meth:`to_json`; raises ``pydantic.ValidationError``."""
        return cls.model_validate_json(data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (UUID and datetime as strings)."""
        return self.model_dump(mode="json")
