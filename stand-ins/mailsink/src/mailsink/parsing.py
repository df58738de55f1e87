"""Turns the raw bytes of a received email into a :class:`CapturedMessage`."""

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader, DateHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Final

from mailsink.html_text import html_to_text
from mailsink.message import AttachmentPart, CapturedMessage, Checksums, MailAddress

logger = logging.getLogger(__name__)

SNIPPET_LENGTH: Final = 250
_WHITESPACE: Final = re.compile(r"\s+")
_PARSER: Final = BytesParser(EmailMessage, policy=policy.default)


def parse_message(
    raw: bytes,
    *,
    sink_id: str,
    received_at: datetime,
    envelope_sender: str | None = None,
    envelope_recipients: Sequence[str] = (),
) -> CapturedMessage:
    """Parse ``raw`` (an RFC 5322 message) as Mailpit would present it, under ``sink_id``.

    Recipients that were on the SMTP envelope but in no To or Cc header were
    blind copies, so they are reported as Bcc, like Mailpit does.
    """
    message = _PARSER.parsebytes(raw)
    to = _addresses(message, "To")
    cc = _addresses(message, "Cc")
    bcc = _with_envelope_bcc(_addresses(message, "Bcc"), to + cc, envelope_recipients)
    senders = _addresses(message, "From")
    text_part = _body_part(message, "plain")
    html_part = _body_part(message, "html")
    html = _text_content(html_part) if html_part is not None else ""
    text = _text_content(text_part) if text_part is not None else html_to_text(html)
    inline, attachments = _attachment_parts(message, exclude=(text_part, html_part))
    subject = _header_text(message, "Subject")
    searchable = [subject, text, *(p.file_name for p in attachments + inline)]
    searchable.extend(f"{a.name} {a.address}" for a in senders + to + cc + bcc)
    return CapturedMessage(
        id=sink_id,
        message_id=_header_text(message, "Message-ID").strip().strip("<>"),
        sender=senders[0] if senders else None,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=_addresses(message, "Reply-To"),
        return_path=(_header_text(message, "Return-Path").strip().strip("<>") or envelope_sender)
        or "",
        subject=subject,
        date=_header_date(message) or received_at,
        received_at=received_at,
        text=text,
        html=html,
        size=len(raw),
        inline=inline,
        attachments=attachments,
        snippet=make_snippet(text),
        search_text="\n".join(searchable).lower(),
        raw=raw,
    )


def make_snippet(text: str) -> str:
    """The first characters of ``text`` on one line, as in Mailpit's message list."""
    collapsed = _WHITESPACE.sub(" ", text).strip()
    if len(collapsed) <= SNIPPET_LENGTH:
        return collapsed
    return collapsed[:SNIPPET_LENGTH].rstrip() + "..."


def _raw_values(message: EmailMessage, name: str) -> list[str]:
    """Header values exactly as received, RFC 2047 words decoded, without structured parsing."""
    values: list[str] = []
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            try:
                values.append(str(make_header(decode_header(str(value)))))
            except (ValueError, LookupError):
                values.append(str(value))
    return values


def _addresses(message: EmailMessage, name: str) -> tuple[MailAddress, ...]:
    try:
        headers = message.get_all(name) or []
        found: list[MailAddress] = []
        for header in headers:
            if isinstance(header, AddressHeader):
                found.extend(MailAddress(a.display_name, a.addr_spec) for a in header.addresses)
            else:
                found.extend(_addresses_from_text(str(header)))
        return tuple(found)
    except Exception:  # the stdlib header parser still has crashing corner cases
        logger.debug("falling back to lenient parsing of the %s header", name, exc_info=True)
        return tuple(a for value in _raw_values(message, name) for a in _addresses_from_text(value))


def _addresses_from_text(value: str) -> list[MailAddress]:
    return [MailAddress(name, address) for name, address in getaddresses([value]) if address]


def _with_envelope_bcc(
    bcc: tuple[MailAddress, ...],
    visible: tuple[MailAddress, ...],
    envelope_recipients: Sequence[str],
) -> tuple[MailAddress, ...]:
    known = {a.address.lower() for a in visible + bcc}
    blind: list[MailAddress] = []
    for recipient in envelope_recipients:
        if recipient.lower() not in known:
            known.add(recipient.lower())
            blind.append(MailAddress("", recipient))
    return bcc + tuple(blind)


def _header_text(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception:  # the stdlib header parser still has crashing corner cases
        logger.debug("falling back to the raw %s header", name, exc_info=True)
        values = _raw_values(message, name)
        return values[0] if values else ""


def _header_date(message: EmailMessage) -> datetime | None:
    try:
        header = message.get("Date")
    except Exception:  # the stdlib header parser still has crashing corner cases
        logger.debug("ignoring an unparsable Date header", exc_info=True)
        return None
    if not isinstance(header, DateHeader) or header.datetime is None:
        return None
    moment = header.datetime
    # RFC 5322 "-0000" means "no zone information"; report such dates in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _body_part(message: EmailMessage, subtype: str) -> EmailMessage | None:
    part = message.get_body(preferencelist=(subtype,))
    return part if isinstance(part, EmailMessage) else None


def _text_content(part: EmailMessage) -> str:
    """The decoded text of ``part``, with LF line ends whatever SMTP carried."""
    return _decoded_text(part).replace("\r\n", "\n")


def _decoded_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, UnicodeError):
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _leaf_parts(part: EmailMessage, part_id: str = "") -> Iterator[tuple[str, EmailMessage]]:
    if part.get_content_maintype() != "multipart":
        yield part_id or "1", part
        return
    for index, child in enumerate(part.iter_parts(), start=1):
        if isinstance(child, EmailMessage):
            yield from _leaf_parts(child, f"{part_id}.{index}" if part_id else str(index))


def _attachment_parts(
    message: EmailMessage, *, exclude: tuple[EmailMessage | None, ...]
) -> tuple[tuple[AttachmentPart, ...], tuple[AttachmentPart, ...]]:
    inline: list[AttachmentPart] = []
    attachments: list[AttachmentPart] = []
    for part_id, part in _leaf_parts(message):
        if any(part is body for body in exclude):
            continue
        content_id = _header_text(part, "Content-ID").strip().strip("<>")
        disposition = part.get_content_disposition()
        described = _describe(part_id, part, content_id)
        if disposition == "inline" or (disposition is None and content_id):
            inline.append(described)
        else:
            attachments.append(described)
    return tuple(inline), tuple(attachments)


def _describe(part_id: str, part: EmailMessage, content_id: str) -> AttachmentPart:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else part.as_bytes()
    return AttachmentPart(
        part_id=part_id,
        file_name=part.get_filename() or "",
        content_type=part.get_content_type(),
        content_id=content_id,
        size=len(data),
        checksums=Checksums(
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
    )
