"""Captured messages in the JSON shape of Mailpit's API v1, so Mailpit can replace the sink."""

from collections.abc import Sequence
from datetime import UTC, datetime

from mailsink.message import AttachmentPart, CapturedMessage, MailAddress

JsonObject = dict[str, object]


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 with milliseconds; UTC is written ``Z`` as Go does."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def address_json(address: MailAddress) -> JsonObject:
    return {"Name": address.name, "Address": address.address}


def _addresses_json(addresses: Sequence[MailAddress]) -> list[JsonObject]:
    return [address_json(address) for address in addresses]


def attachment_json(part: AttachmentPart) -> JsonObject:
    return {
        "PartID": part.part_id,
        "FileName": part.file_name,
        "ContentType": part.content_type,
        "ContentID": part.content_id,
        "Size": part.size,
        "Checksums": {
            "MD5": part.checksums.md5,
            "SHA1": part.checksums.sha1,
            "SHA256": part.checksums.sha256,
        },
    }


def summary_json(message: CapturedMessage) -> JsonObject:
    """One entry of ``messages`` in a list or search response."""
    return {
        "ID": message.id,
        "MessageID": message.message_id,
        "Read": message.read,
        "From": address_json(message.sender) if message.sender is not None else None,
        "To": _addresses_json(message.to),
        "Cc": _addresses_json(message.cc),
        "Bcc": _addresses_json(message.bcc),
        "ReplyTo": _addresses_json(message.reply_to),
        "Subject": message.subject,
        "Created": rfc3339(message.received_at),
        "Tags": [],
        "Size": message.size,
        "Attachments": len(message.attachments),
        "Snippet": message.snippet,
    }


def message_json(message: CapturedMessage) -> JsonObject:
    """The body of ``GET /api/v1/message/{ID}``."""
    return {
        "ID": message.id,
        "MessageID": message.message_id,
        "From": address_json(message.sender) if message.sender is not None else None,
        "To": _addresses_json(message.to),
        "Cc": _addresses_json(message.cc),
        "Bcc": _addresses_json(message.bcc),
        "ReplyTo": _addresses_json(message.reply_to),
        "ReturnPath": message.return_path,
        "Subject": message.subject,
        "Date": rfc3339(message.date),
        "Tags": [],
        "Text": message.text,
        "HTML": message.html,
        "Size": message.size,
        "Inline": [attachment_json(part) for part in message.inline],
        "Attachments": [attachment_json(part) for part in message.attachments],
    }


def messages_json(
    page: Sequence[CapturedMessage], *, start: int, total: int, unread: int, matched: int
) -> JsonObject:
    """A list or search response: ``total``/``unread`` count the whole mailbox,
    ``messages_count`` what the listing or search matched."""
    return {
        "total": total,
        "unread": unread,
        "count": len(page),
        "messages_count": matched,
        "start": start,
        "tags": [],
        "messages": [summary_json(message) for message in page],
    }
