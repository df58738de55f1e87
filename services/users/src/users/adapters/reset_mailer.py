"""Composes the password-reset email from the service's templates.

Delivery is not done here: the reset email job's use case sends the composed
email through the kit's ``EmailSender`` inside the transaction that stores the
token's digest, so the link itself is never stored or logged.
"""

from __future__ import annotations

from urllib.parse import urlencode

from emporium_kit.email import EmailTemplates, RenderedEmail


class ResetEmailComposer:
    def __init__(self, templates: EmailTemplates, public_web_url: str) -> None:
        self._templates = templates
        self._base = public_web_url.rstrip("/")

    def reset_link(self, token: str) -> str:
        return f"{self._base}/reset-password?{urlencode({'token': token})}"

    def compose_reset_email(
        self, *, full_name: str, token: str, expires_minutes: int
    ) -> RenderedEmail:
        return self._templates.render(
            "password_reset",
            {"full_name": full_name, "link": self.reset_link(token), "minutes": expires_minutes},
        )
