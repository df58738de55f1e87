"""A development mail sink that captures SMTP mail and serves it like Mailpit's API v1."""

from mailsink.mailbox import Mailbox
from mailsink.settings import MailSinkSettings
from mailsink.sink import MailSink

__all__ = ["MailSink", "MailSinkSettings", "Mailbox"]
