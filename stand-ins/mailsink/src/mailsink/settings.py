"""Configuration of the mail sink, read from ``MAILSINK_*`` environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MailSinkSettings(BaseSettings):
    """Where the sink listens and how much mail it keeps."""

    model_config = SettingsConfigDict(env_prefix="MAILSINK_", frozen=True)

    smtp_host: str = Field(
        default="127.0.0.1", description="MAILSINK_SMTP_HOST: address the SMTP server binds."
    )
    smtp_port: int = Field(
        default=1025,
        ge=0,
        le=65535,
        description="MAILSINK_SMTP_PORT: SMTP port; 0 picks a free one.",
    )
    http_host: str = Field(
        default="127.0.0.1", description="MAILSINK_HTTP_HOST: address the HTTP API binds."
    )
    http_port: int = Field(
        default=8025,
        ge=0,
        le=65535,
        description="MAILSINK_HTTP_PORT: HTTP port; 0 picks a free one.",
    )
    max_messages: int = Field(
        default=5000,
        ge=1,
        description="MAILSINK_MAX_MESSAGES: messages kept in memory; the oldest go first.",
    )
    max_message_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=1024,
        description="MAILSINK_MAX_MESSAGE_BYTES: largest message the SMTP server accepts.",
    )
    smtp_hostname: str = Field(
        default="mailsink.local",
        description="MAILSINK_SMTP_HOSTNAME: name the SMTP server greets with.",
    )
    log_level: str = Field(default="INFO", description="MAILSINK_LOG_LEVEL: logging level.")
