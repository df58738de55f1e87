from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mailsink.mailbox import Mailbox, Received
from mailsink.message import CapturedMessage
from mailsink.search import SearchQuery

Capture = Callable[..., CapturedMessage]
RawBuilder = Callable[..., bytes]


def test_mailbox_keeps_only_the_newest_messages(
    mailbox: Mailbox, capture: Capture, build_raw: RawBuilder
) -> None:
    for number in range(1, 6):
        mailbox.add(capture(build_raw(subject=f"message {number}")))

    assert len(mailbox) == 3
    assert [m.subject for m in mailbox.newest_first()] == ["message 5", "message 4", "message 3"]


def test_page_counts_from_the_newest(
    mailbox: Mailbox, capture: Capture, build_raw: RawBuilder
) -> None:
    for number in range(1, 4):
        mailbox.add(capture(build_raw(subject=f"message {number}")))

    assert [m.subject for m in mailbox.page(1, 5)] == ["message 2", "message 1"]
    assert mailbox.page(3, 5) == []
    assert mailbox.latest() is not None
    assert mailbox.latest() is mailbox.page(0, 1)[0]


def test_delete_removes_known_ids_and_ignores_unknown_ones(
    mailbox: Mailbox, capture: Capture, build_raw: RawBuilder
) -> None:
    first, second = capture(build_raw()), capture(build_raw())
    mailbox.add(first)
    mailbox.add(second)

    removed = mailbox.delete([first.id, "unknown"])

    assert removed == 1
    assert mailbox.get(first.id) is None
    assert mailbox.get(second.id) is second


def test_unread_counts_messages_not_yet_opened(
    mailbox: Mailbox, capture: Capture, build_raw: RawBuilder
) -> None:
    first, second = capture(build_raw()), capture(build_raw())
    mailbox.add(first)
    mailbox.add(second)
    first.read = True

    assert mailbox.unread == 1
    assert mailbox.search(SearchQuery.parse("is:unread")) == [second]


def test_empty_mailbox_has_no_latest_message(mailbox: Mailbox) -> None:
    assert mailbox.latest() is None
    assert len(mailbox) == 0


def test_mailbox_needs_room_for_one_message() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Mailbox(max_messages=0)


def test_a_received_message_is_parsed_when_first_read_and_kept_in_its_place(
    mailbox: Mailbox, capture: Capture, build_raw: RawBuilder
) -> None:
    mailbox.add(capture(build_raw(subject="parsed on arrival")))
    raw = build_raw(subject="parsed when read", to="Bob <bob@example.test>")
    received = Received(
        id="r-1",
        raw=raw,
        received_at=datetime(2025, 3, 1, 9, 31, tzinfo=UTC),
        envelope_sender="shop@example.test",
        envelope_recipients=("bob@example.test", "hidden@example.test"),
    )
    mailbox.add(received)
    assert mailbox.unread == 2  # counted without parsing

    latest = mailbox.latest()
    assert latest is not None
    assert (latest.id, latest.subject, latest.size) == ("r-1", "parsed when read", len(raw))
    assert [a.address for a in latest.to] == ["bob@example.test"]
    assert [a.address for a in latest.bcc] == ["hidden@example.test"]
    assert latest.received_at == received.received_at
    assert mailbox.get("r-1") is latest  # parsed once, then kept
    assert [m.subject for m in mailbox.newest_first()] == ["parsed when read", "parsed on arrival"]
