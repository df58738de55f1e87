"""Dead letters as ops keeps them, and the rule of replay.

A dead letter is a message some service gave up on: its original body byte for
byte, headers and id, the queue it came from, and why it failed. Ops stores
each once (by its id) and puts it back on its queue at most once.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from ops.domain.errors import AlreadyReplayed, DeadLetterNotFound, NotReplayable

MessageKind = Literal["job", "event"]

UNPARSEABLE: Final = "unparseable"
"""The name of a message that reached the dead-letters queue but is no dead letter."""

# Fixed forever: the ids of unparseable messages are derived from it.
_UNPARSEABLE_NAMESPACE: Final = uuid.UUID("5b0c7a53-3f2e-4d8e-9a63-0f1d2c7e4b18")


@dataclass(frozen=True, slots=True)
class IncomingDeadLetter:
    """A dead letter as it arrives from the queue, before ops stores it."""

    id: uuid.UUID
    service: str
    queue: str
    kind: MessageKind
    name: str
    message_id: str
    body: bytes
    headers: dict[str, Any]
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    last_error: str


@dataclass(frozen=True, slots=True)
class StoredDeadLetter(IncomingDeadLetter):
    """A dead letter in ops' table, with what ops did with it."""

    received_at: datetime
    replayed_at: datetime | None
    replay_count: int

    @property
    def is_unparseable(self) -> bool:
        return self.kind == "event" and self.name == UNPARSEABLE


def unparseable_message(
    *,
    body: bytes,
    message_id: str | None,
    headers: dict[str, Any],
    service: str | None,
    queue: str,
    error: str,
    at: datetime,
) -> IncomingDeadLetter:
    """A message on the dead-letters queue whose body is no dead letter, kept as one.

    Nothing else holds it once it is acknowledged, so it is stored rather than
    dropped: kind ``event``, name :data:`UNPARSEABLE`, the raw body and the
    parse error. Its id is derived from its message id and body, so a
    redelivery of the same message is stored once, like any dead letter.
    """
    digest = hashlib.sha256(body).hexdigest()
    return IncomingDeadLetter(
        id=uuid.uuid5(_UNPARSEABLE_NAMESPACE, f"{message_id or ''}:{digest}"),
        service=service or "unknown",
        queue=queue,
        kind="event",
        name=UNPARSEABLE,
        message_id=message_id or "",
        body=body,
        headers=headers,
        attempts=1,
        first_failed_at=at,
        last_failed_at=at,
        last_error=error,
    )


def ensure_replayable(letter: StoredDeadLetter | None) -> StoredDeadLetter:
    """The rule of replay: a dead letter that exists goes back on its queue once.

    An unparseable message is never replayed: it did not come from the queue it
    was read from, and putting it there would only bring it back here. The
    check is made on the row as read; marking it replayed is conditional on it
    still being unreplayed (``DeadLetterRepository.mark_replayed``), so of two
    concurrent replays that both pass here exactly one goes ahead.
    """
    if letter is None:
        raise DeadLetterNotFound
    if letter.replayed_at is not None:
        raise AlreadyReplayed(letter.replayed_at)
    if letter.is_unparseable:
        raise NotReplayable
    return letter
