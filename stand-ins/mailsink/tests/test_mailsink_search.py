from collections.abc import Callable

import pytest

from mailsink.message import CapturedMessage
from mailsink.search import SearchQuery

Capture = Callable[..., CapturedMessage]
RawBuilder = Callable[..., bytes]


@pytest.fixture
def order_mail(capture: Capture, build_raw: RawBuilder) -> CapturedMessage:
    return capture(
        build_raw(
            to="Alice Liddell <alice@example.test>",
            subject="Your order has shipped",
            body="Tracking number ZX-42 is on its way.",
            extra_headers="Cc: accounts@example.test",
        ),
        ("alice@example.test", "audit@example.test"),
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("to:alice@example.test", True),
        ("to:ALICE", True),
        ("to:liddell", True),
        ("to:bob@example.test", False),
        ("to:accounts@example.test", False),
        ("cc:accounts", True),
        ("bcc:audit@example.test", True),
        ("from:shop@example.test", True),
        ("addressed:audit", True),
        ('subject:"order has shipped"', True),
        ('subject:"order was cancelled"', False),
        ("subject:shipped to:alice", True),
        ("subject:shipped to:bob", False),
        ("zx-42", True),
        ("tracking ZX-42", True),
        ('"on its way"', True),
        ("refund", False),
        ("-refund", True),
        ("!to:alice", False),
        ("message-id:m-1@example", True),
        ("is:unread", True),
        ("is:read", False),
        ("has:attachment", False),
        ("-has:attachments", True),
        ('subject:"unbalanced', False),
        ("to:", True),
    ],
)
def test_query_matches_like_mailpit(
    order_mail: CapturedMessage, query: str, expected: bool
) -> None:
    assert SearchQuery.parse(query).matches(order_mail) is expected


def test_query_without_terms_matches_everything(order_mail: CapturedMessage) -> None:
    assert SearchQuery.parse("   ").predicates == ()
    assert SearchQuery.parse("   ").matches(order_mail) is True
