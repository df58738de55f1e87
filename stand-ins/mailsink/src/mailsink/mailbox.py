"""The in-memory store of captured messages, newest kept, oldest dropped past a bound."""

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from itertools import islice

from mailsink.message import CapturedMessage
from mailsink.search import SearchQuery


class Mailbox:
    """Captured messages in arrival order, at most ``max_messages`` of them.

    Only the event loop's thread touches it, so it needs no lock.
    """

    def __init__(self, max_messages: int) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._max_messages = max_messages
        self._messages: OrderedDict[str, CapturedMessage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def unread(self) -> int:
        return sum(1 for message in self._messages.values() if not message.read)

    def add(self, message: CapturedMessage) -> None:
        self._messages[message.id] = message
        while len(self._messages) > self._max_messages:
            self._messages.popitem(last=False)

    def get(self, message_id: str) -> CapturedMessage | None:
        return self._messages.get(message_id)

    def latest(self) -> CapturedMessage | None:
        return next(self.newest_first(), None)

    def newest_first(self) -> Iterator[CapturedMessage]:
        return reversed(self._messages.values())

    def page(self, start: int, limit: int) -> list[CapturedMessage]:
        return list(islice(self.newest_first(), start, start + limit))

    def search(self, query: SearchQuery) -> list[CapturedMessage]:
        """Every message matching ``query``, newest first."""
        return [message for message in self.newest_first() if query.matches(message)]

    def delete(self, message_ids: Iterable[str]) -> int:
        """Delete the given messages; unknown IDs are ignored. Returns how many went."""
        removed = (self._messages.pop(message_id, None) for message_id in message_ids)
        return sum(1 for message in removed if message is not None)

    def clear(self) -> None:
        self._messages.clear()
