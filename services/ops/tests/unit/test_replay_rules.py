"""The rule of replay and the replay use case, on in-memory fakes that behave."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest

from emporium_kit.problems import DependencyUnavailable
from ops.domain.dead_letters import (
    UNPARSEABLE,
    IncomingDeadLetter,
    StoredDeadLetter,
    ensure_replayable,
    unparseable_message,
)
from ops.domain.errors import (
    AlreadyReplayed,
    DeadLetterNotFound,
    NotReplayable,
    OriginalQueueGone,
)
from ops.use_cases.ports import OpsPorts
from ops.use_cases.record_dead_letter import record_dead_letter
from ops.use_cases.replay_dead_letter import replay_dead_letter

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def incoming(**changes: object) -> IncomingDeadLetter:
    letter = IncomingDeadLetter(
        id=uuid.uuid4(),
        service="orders",
        queue="orders.payments",
        kind="job",
        name="orders.charge_payment",
        message_id="job-1",
        body=b'{"order": 1}',
        headers={"x-request-id": "r-1"},
        attempts=5,
        first_failed_at=NOW - timedelta(minutes=5),
        last_failed_at=NOW,
        last_error="TimeoutError",
    )
    return replace(letter, **changes)  # type: ignore[arg-type]


def stored(letter: IncomingDeadLetter, replayed_at: datetime | None = None) -> StoredDeadLetter:
    return StoredDeadLetter(
        **{name: getattr(letter, name) for name in IncomingDeadLetter.__dataclass_fields__},
        received_at=NOW,
        replayed_at=replayed_at,
        replay_count=0 if replayed_at is None else 1,
    )


@dataclass
class World:
    rows: dict[uuid.UUID, StoredDeadLetter] = field(default_factory=dict)


class FakeRepository:
    def __init__(self, rows: dict[uuid.UUID, StoredDeadLetter]) -> None:
        self.rows = rows

    async def add(self, letter: IncomingDeadLetter) -> bool:
        if letter.id in self.rows:
            return False
        self.rows[letter.id] = stored(letter)
        return True

    async def get(self, letter_id: uuid.UUID) -> StoredDeadLetter | None:
        return self.rows.get(letter_id)

    async def mark_replayed(self, letter_id: uuid.UUID) -> StoredDeadLetter | None:
        row = self.rows.get(letter_id)
        if row is None or row.replayed_at is not None:
            return None
        self.rows[letter_id] = replace(row, replayed_at=NOW, replay_count=row.replay_count + 1)
        return self.rows[letter_id]

    async def page(self, **_: object) -> list[StoredDeadLetter]:
        raise NotImplementedError


class FakeUnitOfWork:
    """Edits a copy of the world; only ``commit`` makes the edits stick."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def __aenter__(self) -> Self:
        self.dead_letters = FakeRepository(copy.deepcopy(self.world.rows))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.world.rows = self.dead_letters.rows


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[StoredDeadLetter] = []
        self.failure: Exception | None = None

    async def republish(self, letter: StoredDeadLetter) -> None:
        if self.failure is not None:
            raise self.failure
        self.published.append(letter)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def ports(world: World, publisher: FakePublisher) -> OpsPorts:
    def uow(*, read_only: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(world)

    return OpsPorts(uow=uow, publisher=publisher)


def test_an_absent_dead_letter_is_not_found() -> None:
    with pytest.raises(DeadLetterNotFound):
        ensure_replayable(None)


def test_a_replayed_dead_letter_is_not_replayed_again() -> None:
    with pytest.raises(AlreadyReplayed) as refused:
        ensure_replayable(stored(incoming(), replayed_at=NOW))
    assert refused.value.code == "already-replayed"


def test_an_unparseable_message_is_never_replayed() -> None:
    garbage = unparseable_message(
        body=b"junk", message_id="m", headers={}, service=None, queue="dl", error="bad", at=NOW
    )
    with pytest.raises(NotReplayable):
        ensure_replayable(stored(garbage))


def test_an_unreplayed_dead_letter_may_be_replayed() -> None:
    letter = stored(incoming())
    assert ensure_replayable(letter) is letter


def test_an_unparseable_messages_id_is_the_same_on_every_delivery() -> None:
    def keep(body: bytes, message_id: str | None) -> IncomingDeadLetter:
        return unparseable_message(
            body=body,
            message_id=message_id,
            headers={},
            service=None,
            queue="dl",
            error="e",
            at=NOW,
        )

    assert keep(b"a", "m1").id == keep(b"a", "m1").id
    assert keep(b"a", "m1").id != keep(b"b", "m1").id
    assert keep(b"a", "m1").id != keep(b"a", "m2").id
    assert keep(b"a", None).name == UNPARSEABLE
    assert keep(b"a", None).service == "unknown"
    assert keep(b"a", None).kind == "event"


async def test_recording_a_dead_letter_twice_keeps_one(ports: OpsPorts, world: World) -> None:
    letter = incoming()

    assert await record_dead_letter(ports.uow, letter) is True
    assert await record_dead_letter(ports.uow, letter) is False
    assert list(world.rows) == [letter.id]


async def test_replay_publishes_and_marks_once(
    ports: OpsPorts, world: World, publisher: FakePublisher
) -> None:
    letter = incoming()
    await record_dead_letter(ports.uow, letter)

    replayed = await replay_dead_letter(ports, letter.id)

    assert replayed.replayed_at == NOW
    assert replayed.replay_count == 1
    assert [p.id for p in publisher.published] == [letter.id]
    assert world.rows[letter.id].replayed_at == NOW
    with pytest.raises(AlreadyReplayed):
        await replay_dead_letter(ports, letter.id)
    assert len(publisher.published) == 1


@pytest.mark.parametrize(
    "failure", [OriginalQueueGone("orders.payments"), DependencyUnavailable("RabbitMQ")]
)
async def test_a_failed_publish_leaves_the_dead_letter_unmarked(
    ports: OpsPorts, world: World, publisher: FakePublisher, failure: Exception
) -> None:
    letter = incoming()
    await record_dead_letter(ports.uow, letter)
    publisher.failure = failure

    with pytest.raises(type(failure)):
        await replay_dead_letter(ports, letter.id)

    assert world.rows[letter.id].replayed_at is None
    assert world.rows[letter.id].replay_count == 0
    publisher.failure = None
    assert (await replay_dead_letter(ports, letter.id)).replay_count == 1


async def test_replay_of_an_unknown_dead_letter_is_not_found(ports: OpsPorts) -> None:
    with pytest.raises(DeadLetterNotFound):
        await replay_dead_letter(ports, uuid.uuid4())
