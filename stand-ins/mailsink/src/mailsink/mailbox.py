"""The in-memory store of captured messages, newest kept, oldest dropped past a bound.

A message arrives as the raw bytes SMTP received (:class:`Received`) and is
parsed the first time anything reads it (a listing, a search, the message
itself), then kept parsed. Parsing with the standard library's ``email``
package is most of what the sink would otherwise spend per message; storing
first keeps the SMTP side cheap under load, and a message nobody reads is
never parsed. What is served is the same either way.
"""

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from mailsink.message import CapturedMessage
from mailsink.parsing import parse_message
from mailsink.search import SearchQuery


@dataclass(frozen=True, slots=True)
class Received:
    """One message as SMTP handed it over, not parsed yet."""

    id: str
    raw: bytes
    received_at: datetime
    envelope_sender: str | None
    envelope_recipients: Sequence[str]

    def parse(self) -> CapturedMessage:
        return parse_message(
            self.raw,
            sink_id=self.id,
            received_at=self.received_at,
            envelope_sender=self.envelope_sender,
            envelope_recipients=self.envelope_recipients,
        )


class Mailbox:
    """Captured messages in arrival order, at most ``max_messages`` of them.

    Only the event loop's thread touches it, so it needs no lock.
    """

    def __init__(self, max_messages: int) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._max_messages = max_messages
        self._messages: OrderedDict[str, CapturedMessage | Received] = OrderedDict()

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def unread(self) -> int:
        return sum(
            1
            for message in self._messages.values()
            if isinstance(message, Received) or not message.read
        )

    def add(self, message: CapturedMessage | Received) -> None:
        self._messages[message.id] = message
        while len(self._messages) > self._max_messages:
            self._messages.popitem(last=False)

    def _parsed(self, message: CapturedMessage | Received) -> CapturedMessage:
        if isinstance(message, CapturedMessage):
            return message
        parsed = message.parse()
        if message.id in self._messages:
            self._messages[message.id] = parsed  # same key: its place in the order stays
        return parsed

    def get(self, message_id: str) -> CapturedMessage | None:
        found = self._messages.get(message_id)
        return self._parsed(found) if found is not None else None

    def latest(self) -> CapturedMessage | None:
        return next(self.newest_first(), None)

    def newest_first(self) -> Iterator[CapturedMessage]:
        for message in reversed(list(self._messages.values())):
            yield self._parsed(message)

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
