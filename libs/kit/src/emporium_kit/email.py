"""Templated email over SMTP: the settings services embed, templates and a retrying sender.

A service keeps its templates in a directory, three files per email::

    order_paid.subject.txt   order_paid.txt   order_paid.html

renders one with :class:`EmailTemplates` and hands the result to
:class:`EmailSender`, which delivers it as ``multipart/alternative`` and retries
transient failures before giving up with :class:`EmailDeliveryFailed`.

The message is built with the standard library's ``email.mime`` classes on its
``compat32`` policy, cloned once with CRLF line ends, and flattened to bytes
once per email: the structured-header machinery of ``policy.default`` (a
parser per header on every read and write, a content manager, refolding when
flattened) cost three times as much CPU per email and nothing it checks is lost,
since the sender validates the recipient, the header names and the values
itself (one parse of the To address through the same header registry as before).

Jinja2 and aiosmtplib are imported when first used (a template rendered, a
connection opened, an SMTP error judged), not with this module: a process
that only builds these parts, like the users API beside its worker, which
alone sends email, does not load them (about 2 MiB of its 120 MB budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import Address, AddressHeader
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cached_property
from io import BytesIO
from os import PathLike
from typing import TYPE_CHECKING, Final, Self, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from emporium_kit.retrying import PermanentError

if TYPE_CHECKING:
    import aiosmtplib
    import jinja2

__all__ = [
    "EmailDeliveryFailed",
    "EmailSender",
    "EmailTemplateError",
    "EmailTemplates",
    "InvalidEmailHeader",
    "InvalidEmailRecipient",
    "RenderedEmail",
    "SmtpSettings",
    "is_transient_smtp_error",
]

logger = logging.getLogger(__name__)

# Headers the sender writes itself; extra headers may not replace them.
RESERVED_HEADERS: Final = frozenset(
    {
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "subject",
        "to",
    }
)
# RFC 5322 section 2.2: printable ASCII except the colon.
_HEADER_NAME: Final = re.compile(r"[!-9;-~]+")
# Built once: the legacy policy with SMTP's line ends, and UTF-8 bodies in
# quoted-printable, which keeps every part 7-bit so no relay needs 8BITMIME.
_SMTP_POLICY: Final = compat32.clone(linesep="\r\n")
_UTF8_QP: Final = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_PARSE_ADDRESS: Final = default_policy.header_factory


class SmtpSettings(BaseModel):
    """How to reach the SMTP server. Services embed it in their settings (e.g. ``SMTP__HOST``)."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(default="127.0.0.1", description="SMTP server host name or address.")
    port: int = Field(default=1025, ge=1, le=65535, description="SMTP server port.")
    use_tls: bool = Field(
        default=False, description="Implicit TLS from the first byte (SMTPS, usually port 465)."
    )
    start_tls: bool = Field(
        default=False, description="Upgrade the connection with STARTTLS (usually port 587)."
    )
    username: str | None = Field(default=None, description="AUTH user name; none skips AUTH.")
    password: SecretStr | None = Field(default=None, description="AUTH password.")
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of each SMTP operation, connecting included."
    )
    sender: str = Field(
        default="Emporium <no-reply@emporium.local>",
        description="From header and envelope sender: an address, optionally with a name.",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Deliveries tried before giving up, the first included."
    )
    retry_initial_seconds: float = Field(
        default=0.5,
        ge=0,
        description="Scale of the exponential backoff between attempts (full jitter).",
    )
    retry_max_seconds: float = Field(
        default=5.0, ge=0, description="Longest wait between two attempts."
    )
    pool_size: int = Field(
        default=4,
        ge=0,
        le=64,
        description="SMTP connections kept open and reused between emails (0: one per email).",
    )
    max_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A kept connection idle longer than this is closed, not reused.",
    )
    local_hostname: str | None = Field(
        default=None, description="Name sent in EHLO; none asks the operating system."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.use_tls and self.start_tls:
            raise ValueError("use_tls and start_tls exclude each other: choose one")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if "@" not in parseaddr(self.sender)[1]:
            raise ValueError(f"sender {self.sender!r} has no email address")
        return self

    @property
    def sender_address(self) -> str:
        """The bare address of :attr:`sender`, used as the envelope sender."""
        return parseaddr(self.sender)[1]


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """An email ready to send: one-line subject, plain text body and HTML body."""

    subject: str
    text: str
    html: str


class EmailTemplateError(Exception):
    """A template is missing or refers to a variable the context does not have."""

    code: Final = "email_template_error"

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"email template {template!r}: {reason}")
        self.template = template
        self.reason = reason


class InvalidEmailRecipient(ValueError):
    """The recipient is not exactly one email address."""

    code: Final = "invalid_email_recipient"


class InvalidEmailHeader(ValueError):
    """An extra header has an invalid name or would replace one the sender writes."""

    code: Final = "invalid_email_header"


class EmailDeliveryFailed(Exception):
    """The SMTP server did not accept the email, after retrying what could be retried.

    Raised as is when the failure may pass (the server down, a 4xx reply): a
    job retries it later. :class:`EmailDeliveryRefused` says it will not pass.
    """

    code: Final = "email_delivery_failed"

    def __init__(self, recipient: str, attempts: int, reason: str) -> None:
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"email delivery failed after {attempts} {noun}: {reason}")
        self.recipient = recipient
        self.attempts = attempts
        self.reason = reason


class EmailDeliveryRefused(EmailDeliveryFailed, PermanentError):
    """The server refused the email for good (a 5xx reply, no TLS): retrying cannot help."""


class EmailTemplates:
    """Renders ``<name>.subject.txt``, ``<name>.txt`` and ``<name>.html`` from one directory.

    HTML templates are autoescaped, text templates are not, and an undefined
    variable is an error rather than an empty string. Templates are read once
    and cached.
    """

    def __init__(self, directory: str | PathLike[str]) -> None:
        self._directory = directory

    @cached_property
    def _environment(self) -> jinja2.Environment:
        import jinja2

        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(self._directory),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
            keep_trailing_newline=True,
        )

    def render(self, name: str, context: Mapping[str, object]) -> RenderedEmail:
        subject = self._render(f"{name}.subject.txt", context)
        return RenderedEmail(
            # A header is one line: template newlines must not become header folding or
            # injection.
            subject=" ".join(subject.split()),
            text=self._render(f"{name}.txt", context),
            html=self._render(f"{name}.html", context),
        )

    def _render(self, template_name: str, context: Mapping[str, object]) -> str:
        import jinja2

        try:
            return self._environment.get_template(template_name).render(context)
        except jinja2.TemplateNotFound as error:
            raise EmailTemplateError(template_name, "not found") from error
        except jinja2.UndefinedError as error:
            raise EmailTemplateError(template_name, error.message or "undefined") from error


def is_transient_smtp_error(error: BaseException) -> bool:
    """Whether trying again later may succeed: 4xx replies, timeouts, refused or lost connections.

    5xx replies (a refused recipient, failed authentication) and missing server
    features are permanent.
    """
    import aiosmtplib

    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(400 <= r.code < 500 for r in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    if isinstance(error, aiosmtplib.SMTPNotSupported | ssl.SSLError):
        return False  # a missing extension or a failed TLS handshake will fail again
    return isinstance(
        error,
        aiosmtplib.SMTPServerDisconnected
        | aiosmtplib.SMTPConnectError
        | aiosmtplib.SMTPTimeoutError
        | OSError,
    )


def _header_value(value: str) -> str:
    """A header value as the legacy policy writes it: ASCII as is, anything else as
    RFC 2047 encoded words (UTF-8), folded by the generator."""
    if value.isascii():
        return value
    # compat32 messages take Header objects as values (typeshed says str).
    return cast(str, Header(value, "utf-8"))


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    """A ``text/<subtype>`` part in UTF-8, quoted-printable (what ``MIMEText`` does, with
    a charset object instead of a name, so the body encoding is QP, not base64)."""
    part = MIMENonMultipart("text", subtype, policy=_SMTP_POLICY, charset="utf-8")
    part.set_payload(text, _UTF8_QP)
    return part


# A kept connection used this recently is not asked a NOOP before the next email.
_NOOP_AFTER_IDLE_SECONDS: Final = 1.0


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    logger.warning(
        "email delivery attempt %d failed (%s: %s); retrying in %.2fs",
        state.attempt_number,
        type(error).__name__,
        error,
        wait,
    )


class EmailSender:
    """Delivers rendered emails through the SMTP server in :class:`SmtpSettings`.

    Up to ``pool_size`` connections are kept and reused (connect, TLS and EHLO
    once, not per email; a worker sending many emails spends most of its time
    there otherwise), at most that many in use at once; a connection idle
    longer than ``max_idle_seconds`` is closed. A kept connection is checked
    with a NOOP before use, and one the server dropped is replaced at once,
    without counting as a failed attempt. A retry
    after a connection lost at the very end of DATA may deliver an email
    twice; for notifications that is better than not at all.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        # The Message-ID domain comes from the sender so make_msgid never asks DNS.
        self._message_id_domain = settings.sender_address.rpartition("@")[2]
        name, address = parseaddr(settings.sender)
        self._ascii_sender = address.isascii()
        self._from_header = (
            formataddr((name, address), charset="utf-8") if address.isascii() else ""
        )
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []
        # With a pool, at most pool_size connections at once; without, one per email.
        self._slots: asyncio.Semaphore | contextlib.nullcontext[None] = (
            asyncio.Semaphore(settings.pool_size)
            if settings.pool_size
            else contextlib.nullcontext()
        )
        self._local_hostname = settings.local_hostname

    def _checked(
        self, to: str, headers: Mapping[str, str] | None
    ) -> tuple[Address, list[tuple[str, str]]]:
        """The one recipient of ``to`` and the extra headers, checked.

        Raises :class:`InvalidEmailRecipient` unless ``to`` is exactly one address
        with a domain, :class:`InvalidEmailHeader` for an extra header that is
        malformed, would replace one the sender writes, or holds a line break.
        """
        to_header = _PARSE_ADDRESS("To", to)
        if not isinstance(to_header, AddressHeader) or len(to_header.addresses) != 1:
            raise InvalidEmailRecipient(f"expected exactly one email address, got {to!r}")
        address = to_header.addresses[0]
        if not address.domain:
            raise InvalidEmailRecipient(f"{to!r} has no domain")
        extra: list[tuple[str, str]] = []
        for name, value in (headers or {}).items():
            if not _HEADER_NAME.fullmatch(name):
                raise InvalidEmailHeader(f"{name!r} is not a valid header name")
            if name.lower() in RESERVED_HEADERS:
                raise InvalidEmailHeader(f"{name} is set by the sender and cannot be replaced")
            if "\r" in value or "\n" in value:
                raise InvalidEmailHeader(
                    f"header value for {name!r} contains a linefeed or carriage return"
                )
            extra.append((name, value))
        return address, extra

    def build_message(
        self, to: str, email: RenderedEmail, *, headers: Mapping[str, str] | None = None
    ) -> EmailMessage:
        """The ``multipart/alternative`` message, as a structured ``EmailMessage``
        (``policy.default``): what :meth:`send` delivers to an internationalised
        address (SMTPUTF8), and the same headers and parts :meth:`build_bytes`
        writes for every other one."""
        return self._structured(email, *self._checked(to, headers))

    def _structured(
        self, email: RenderedEmail, address: Address, extra: list[tuple[str, str]]
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = address
        message["Subject"] = " ".join(email.subject.split())
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=self._message_id_domain)
        for name, value in extra:
            message[name] = value
        # Quoted-printable keeps every part 7-bit, so no relay needs 8BITMIME.
        message.set_content(email.text, cte="quoted-printable")
        message.add_alternative(email.html, subtype="html", cte="quoted-printable")
        return message

    def build_bytes(
        self, to: str, email: RenderedEmail, *, headers: Mapping[str, str] | None = None
    ) -> tuple[bytes, str]:
        """The message :meth:`send` delivers to an ASCII address, as the bytes of its
        DATA, and the bare recipient address for the envelope. Raises as
        :meth:`build_message` does, and :class:`InvalidEmailRecipient` for an
        address that is not ASCII (it needs :meth:`build_message` and SMTPUTF8)."""
        address, extra = self._checked(to, headers)
        if not address.addr_spec.isascii():
            raise InvalidEmailRecipient(f"{to!r} needs SMTPUTF8: use build_message")
        return self._flat(email, address, extra), address.addr_spec

    def _flat(self, email: RenderedEmail, address: Address, extra: list[tuple[str, str]]) -> bytes:
        message = MIMEMultipart("alternative", policy=_SMTP_POLICY)
        message["From"] = self._from_header
        message["To"] = formataddr((address.display_name, address.addr_spec), charset="utf-8")
        # RenderedEmail subjects are one line already; a caller's own may not be.
        message["Subject"] = _header_value(" ".join(email.subject.split()))
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=self._message_id_domain)
        for name, value in extra:
            message[name] = _header_value(value)
        message.attach(_text_part(email.text, "plain"))
        message.attach(_text_part(email.html, "html"))
        out = BytesIO()
        BytesGenerator(out, mangle_from_=False, policy=_SMTP_POLICY).flatten(message)
        return out.getvalue()

    async def send(
        self, to: str, email: RenderedEmail, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``email`` to the single address ``to``, with ``headers`` added (X-Request-ID...).

        Raises :class:`EmailDeliveryFailed` once the server refused the email for
        good or every attempt failed; :class:`InvalidEmailRecipient` and
        :class:`InvalidEmailHeader` before trying when the input is wrong.
        """
        address, extra = self._checked(to, headers)
        if address.addr_spec.isascii() and self._ascii_sender:
            message: EmailMessage | tuple[bytes, str] = (
                self._flat(email, address, extra),
                address.addr_spec,
            )
        else:
            # An internationalised address needs SMTPUTF8: aiosmtplib's send_message
            # negotiates it from the structured message (the rare, slower path).
            message = self._structured(email, address, extra)
        await self._send_with_retries(to, message)

    async def _send_with_retries(self, to: str, message: EmailMessage | tuple[bytes, str]) -> None:
        import aiosmtplib

        settings = self._settings
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.max_attempts),
            wait=wait_random_exponential(
                multiplier=settings.retry_initial_seconds, max=settings.retry_max_seconds
            ),
            retry=retry_if_exception(is_transient_smtp_error),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await self._deliver(message)
        except (aiosmtplib.SMTPException, OSError) as error:
            failure = (
                EmailDeliveryFailed if is_transient_smtp_error(error) else EmailDeliveryRefused
            )
            raise failure(to, attempts, f"{type(error).__name__}: {error}") from error

    async def _deliver(self, message: EmailMessage | tuple[bytes, str]) -> None:
        sender = self._settings.sender_address
        async with self._slots:
            client = await self._checkout()
            try:
                if isinstance(message, tuple):
                    raw, recipient = message
                    await client.sendmail(sender, [recipient], raw)
                else:
                    await client.send_message(message, sender=sender)
            except BaseException:
                client.close()
                raise
            self._checkin(client)

    async def _checkout(self) -> aiosmtplib.SMTP:
        """A kept connection that still answers, or a new one.

        One idle for more than :data:`_NOOP_AFTER_IDLE_SECONDS` is asked a NOOP
        first (before anything of the email is sent, so replacing a dropped one
        can never deliver twice); one that finished an email just before is used
        as is: under load that NOOP was a round trip per email on both ends. If
        the server dropped it in that instant, the send fails before DATA and
        counts as one attempt, retried after a short backoff; never twice sent.
        """
        import aiosmtplib

        now = time.monotonic()
        while self._idle:
            since, client = self._idle.pop()
            if not client.is_connected or now - since > self._settings.max_idle_seconds:
                client.close()
                continue
            if now - since <= _NOOP_AFTER_IDLE_SECONDS:
                return client
            try:
                await client.noop()
            except (aiosmtplib.SMTPException, OSError) as error:
                logger.info("kept SMTP connection dropped (%r); reconnecting", error)
                client.close()
                continue
            return client
        return await self._connect()

    def _checkin(self, client: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self._settings.pool_size and client.is_connected:
            self._idle.append((time.monotonic(), client))
        else:
            client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        import aiosmtplib

        settings = self._settings
        if self._local_hostname is None:
            # Resolved once, off the event loop (aiosmtplib would ask on every connection).
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            use_tls=settings.use_tls,
            start_tls=settings.start_tls,
            timeout=settings.timeout_seconds,
            local_hostname=self._local_hostname,
        )
        await client.connect()
        return client

    async def aclose(self) -> None:
        """Close the kept connections (politely: QUIT, then close)."""
        idle, self._idle = self._idle, []
        for _, client in idle:
            try:
                await client.quit()
            except Exception:  # the server may be gone already
                client.close()
