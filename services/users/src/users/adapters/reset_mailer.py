"""Sends the password-reset email through the kit's email adapter.

The request answers 202 at once whatever happens here (so timing does not
reveal whether the email exists); delivery runs as a tracked background task
that the email adapter retries with backoff, and shutdown waits for it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import structlog

from emporium_kit.context import current_request_id
from emporium_kit.email import EmailDeliveryFailed, EmailSender, EmailTemplates, RenderedEmail

log = structlog.get_logger(__name__)


class SmtpResetMailer:
    def __init__(self, sender: EmailSender, templates: EmailTemplates, public_web_url: str) -> None:
        self._sender = sender
        self._templates = templates
        self._base = public_web_url.rstrip("/")
        self._pending: set[asyncio.Task[None]] = set()

    def reset_link(self, token: str) -> str:
        return f"{self._base}/reset-password?{urlencode({'token': token})}"

    def send_reset_link(self, *, to: str, full_name: str, token: str, expires_minutes: int) -> None:
        email = self._templates.render(
            "password_reset",
            {"full_name": full_name, "link": self.reset_link(token), "minutes": expires_minutes},
        )
        request_id = current_request_id()
        headers = {"X-Request-ID": request_id} if request_id else None
        task = asyncio.create_task(self._deliver(to, email, headers))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, to: str, email: RenderedEmail, headers: dict[str, str] | None) -> None:
        try:
            await self._sender.send(to, email, headers=headers)
            log.info("password_reset_email_sent")
        except EmailDeliveryFailed as exc:
            log.error("password_reset_email_failed", error=str(exc))

    async def drain(self, timeout_seconds: float = 10.0) -> None:
        """Wait for emails in flight (graceful shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_seconds)
