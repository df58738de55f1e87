"""The ports the use cases need; adapters implement them, tests fake them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from ops.domain.dead_letters import IncomingDeadLetter, StoredDeadLetter


class DeadLetterRepository(Protocol):
    async def add(self, letter: IncomingDeadLetter) -> bool:
        """Store ``letter`` unless its id is stored already; True if it was new."""

    async def get(self, letter_id: UUID) -> StoredDeadLetter | None: ...

    async def mark_replayed(self, letter_id: UUID) -> StoredDeadLetter | None:
        """Mark the dead letter replayed now, only if it was not replayed yet (atomically).

        The row as marked, or None when nothing was marked: it is absent or was
        replayed already. A concurrent mark of the same row waits for this unit
        of work to end, then marks nothing if this one committed.
        """

    async def page(
        self, *, limit: int, after: tuple[datetime, UUID] | None, queue: str | None
    ) -> list[StoredDeadLetter]:
        """Up to ``limit`` dead letters, newest received first, after ``(received_at, id)``."""


class UnitOfWork(Protocol):
    dead_letters: DeadLetterRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A unit of work; ``read_only`` ones skip the transaction (one round trip a query)."""


class ReplayPublisher(Protocol):
    async def republish(self, letter: StoredDeadLetter) -> None:
        """Put the original message back on ``letter.queue``; returns once the broker confirmed.

        Raises ``OriginalQueueGone`` when no such queue exists (the broker
        routed it nowhere) and ``emporium_kit.problems.DependencyUnavailable``
        when the broker cannot be reached or refused the message.
        """


@dataclass(frozen=True, slots=True)
class OpsPorts:
    """What every use case is given."""

    uow: UnitOfWorkFactory
    publisher: ReplayPublisher
