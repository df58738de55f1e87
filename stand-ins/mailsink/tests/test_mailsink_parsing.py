import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from mailsink.message import CapturedMessage
from mailsink.parsing import SNIPPET_LENGTH, make_snippet

Capture = Callable[..., CapturedMessage]
RawBuilder = Callable[..., bytes]

MULTIPART = (
    b"From: =?utf-8?q?Caf=C3=A9_Shop?= <shop@example.test>\r\n"
    b"To: Bob <bob@example.test>, carol@example.test\r\n"
    b"Cc: Dan <dan@example.test>\r\n"
    b"Reply-To: support@example.test\r\n"
    b"Subject: =?utf-8?b?w5xiZXJzaWNodCDinJM=?=\r\n"
    b"Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n"
    b"Message-ID: <abc.123@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe, Bob =3D friend\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"PHA+R3LDvMOfZSwgPGI+Qm9iPC9iPjwvcD4=\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-ID: <logo@example.test>\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"iVBORw0K\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="invoice.pdf"\r\n'
    b'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQ=\r\n"
    b"--outer--\r\n"
)


def test_multipart_bodies_are_decoded_from_quoted_printable_and_base64(capture: Capture) -> None:
    message = capture(MULTIPART)

    assert message.text == "Grüße, Bob = friend"
    assert message.html == "<p>Grüße, <b>Bob</b></p>"


def test_encoded_words_in_subject_and_names_are_decoded(capture: Capture) -> None:
    message = capture(MULTIPART)

    assert message.subject == "Übersicht ✓"
    assert message.sender is not None
    assert (message.sender.name, message.sender.address) == ("Café Shop", "shop@example.test")


def test_address_headers_become_name_and_address_pairs(capture: Capture) -> None:
    message = capture(MULTIPART)

    assert [(a.name, a.address) for a in message.to] == [
        ("Bob", "bob@example.test"),
        ("", "carol@example.test"),
    ]
    assert [(a.name, a.address) for a in message.cc] == [("Dan", "dan@example.test")]
    assert [(a.name, a.address) for a in message.reply_to] == [("", "support@example.test")]
    assert message.message_id == "abc.123@example.test"
    assert message.return_path == "bounce@example.test"


def test_date_header_keeps_its_offset(capture: Capture, received_at: datetime) -> None:
    message = capture(MULTIPART)

    assert message.date == datetime(2025, 3, 4, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert message.received_at == received_at


def test_missing_date_header_falls_back_to_reception_time(
    capture: Capture, build_raw: RawBuilder, received_at: datetime
) -> None:
    assert capture(build_raw()).date == received_at


def test_parts_with_content_id_are_inline_and_the_rest_attachments(capture: Capture) -> None:
    message = capture(MULTIPART)

    assert [(p.part_id, p.content_type, p.content_id, p.size) for p in message.inline] == [
        ("2", "image/png", "logo@example.test", 6)
    ]
    assert [(p.part_id, p.file_name, p.content_type, p.size) for p in message.attachments] == [
        ("3", "invoice.pdf", "application/pdf", 8)
    ]
    assert message.attachments[0].checksums.sha256 == hashlib.sha256(b"%PDF-1.4").hexdigest()
    assert (
        message.inline[0].checksums.md5
        == hashlib.md5(b"\x89PNG\r\n", usedforsecurity=False).hexdigest()
    )


def test_envelope_recipients_outside_to_and_cc_are_reported_as_bcc(capture: Capture) -> None:
    message = capture(MULTIPART, ("bob@example.test", "DAN@example.test", "eve@example.test"))

    assert [(a.name, a.address) for a in message.bcc] == [("", "eve@example.test")]


def test_html_only_message_gets_text_from_its_html(capture: Capture) -> None:
    raw = (
        b"From: shop@example.test\r\nTo: bob@example.test\r\nSubject: Hi\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p {color: red}</style></head>"
        b"<body><p>Hello &amp; welcome</p><p>Line two</p></body></html>\r\n"
    )
    message = capture(raw)

    assert message.text == "Hello & welcome\n\nLine two"
    assert message.snippet == "Hello & welcome Line two"


def test_plain_text_line_ends_are_normalised_to_lf(capture: Capture, build_raw: RawBuilder) -> None:
    message = capture(build_raw(body="one\r\ntwo"))

    assert message.text == "one\ntwo\n"
    assert message.html == ""


def test_snippet_is_cut_at_250_characters() -> None:
    text = "word " * 100

    snippet = make_snippet(text)

    assert len(snippet) == SNIPPET_LENGTH - 1 + len("...")
    assert snippet.endswith("word...")
    assert make_snippet("  short\n\ttext ") == "short text"


def test_unparsable_address_header_does_not_lose_the_message(
    capture: Capture, build_raw: RawBuilder
) -> None:
    message = capture(build_raw(to='"unterminated <bob@example.test>'))

    assert message.subject == "Hello"
    assert message.text == "Plain body\n"


def test_size_is_the_raw_length_and_search_text_is_lower_case(
    capture: Capture, build_raw: RawBuilder
) -> None:
    raw = build_raw(subject="Order SHIPPED")
    message = capture(raw)

    assert message.size == len(raw)
    assert "order shipped" in message.search_text
    assert "alice@example.test" in message.search_text
    assert message.received_at.tzinfo is UTC
