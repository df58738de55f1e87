"""What the sink keeps of one received email."""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class MailAddress:
    """A mailbox as it appears in a header: an optional display name and the address."""

    name: str
    address: str

    def matches(self, needle: str) -> bool:
        """Whether ``needle`` (lower case) occurs in the name or the address."""
        return needle in self.name.lower() or needle in self.address.lower()


@dataclass(frozen=True, slots=True)
class Checksums:
    md5: str
    sha1: str
    sha256: str


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """A MIME part that is neither the text nor the HTML body."""

    part_id: str
    file_name: str
    content_type: str
    content_id: str
    size: int
    checksums: Checksums


@dataclass(slots=True)
class CapturedMessage:
    """One email as received over SMTP, parsed once when it arrives."""

    id: str
    message_id: str
    sender: MailAddress | None
    to: tuple[MailAddress, ...]
    cc: tuple[MailAddress, ...]
    bcc: tuple[MailAddress, ...]
    reply_to: tuple[MailAddress, ...]
    return_path: str
    subject: str
    date: datetime
    received_at: datetime
    text: str
    html: str
    size: int
    inline: tuple[AttachmentPart, ...]
    attachments: tuple[AttachmentPart, ...]
    snippet: str
    search_text: str = field(repr=False)
    raw: bytes = field(repr=False)
    read: bool = False
