"""Configuration of the users service, from environment variables.

Service-specific variables carry the ``USERS_`` prefix; the ones the contract
names (``ADMIN_EMAIL``, ``PUBLIC_WEB_URL``, ``RATE_LIMIT_LOGIN_FAILURES``,
``SMTP_*``) are read by exactly those names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from emporium_kit.database import DatabaseSettings
from emporium_kit.email import SmtpSettings
from emporium_kit.settings import (
    JobsSettings,
    Networks,
    https_url_problem,
    password_problem,
    secret_problem,
)

DEV_ADMIN_EMAIL = "admin@emporium.local"
DEV_ADMIN_PASSWORD = "admin-dev-password-1"  # noqa: S105 - documented development default
DEV_CURSOR_SECRET = "dev-cursor-secret-change-me"  # noqa: S105 - refused in production
REPO_ROOT = Path(__file__).resolve().parents[4]


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name)


class UsersSettings(JobsSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8001, description="HTTP port of the users service.")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_users",
        description="The users service's own PostgreSQL database.",
    )
    db_pool_size: int = Field(
        default=20,
        description="Connections kept open. Overflow connections are closed on return, "
        "so a pool that is too small churns connections under load.",
    )
    db_max_overflow: int = 5

    jwt_private_key: SecretStr | None = Field(
        default=None,
        description="PEM of the Ed25519 signing key. Required in production.",
    )
    jwt_private_key_file: Path = Field(
        default=REPO_ROOT / "var" / "keys" / "users-ed25519.pem",
        description="Development only: the key is generated here once when no key is set.",
    )
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3_600)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, description="bcrypt cost factor.")
    password_reset_ttl_seconds: int = Field(default=1_800, ge=60)
    password_reset_emails_per_hour: int = Field(
        default=3,
        ge=1,
        description="Reset emails sent to one account in any hour; later requests still "
        "answer 202 and send nothing.",
    )
    cursor_secret: SecretStr = Field(
        default=SecretStr(DEV_CURSOR_SECRET), description="HMAC key that signs page cursors."
    )
    trusted_proxies: Networks = Field(
        default=("127.0.0.1/32", "::1/128"),
        description="Peers whose X-Forwarded-For is believed (the gateway).",
    )

    admin_email: str = Field(default=DEV_ADMIN_EMAIL, validation_alias=_alias("ADMIN_EMAIL"))
    admin_password: SecretStr = Field(
        default=SecretStr(DEV_ADMIN_PASSWORD), validation_alias=_alias("ADMIN_PASSWORD")
    )
    public_web_url: str = Field(
        default="http://localhost:3000", validation_alias=_alias("PUBLIC_WEB_URL")
    )
    rate_limit_login_failures: str = Field(
        default="5/15minute", validation_alias=_alias("RATE_LIMIT_LOGIN_FAILURES")
    )
    smtp_host: str = Field(default="127.0.0.1", validation_alias=_alias("SMTP_HOST"))
    smtp_port: int = Field(default=1025, validation_alias=_alias("SMTP_PORT"))
    smtp_use_tls: bool = Field(default=False, validation_alias=_alias("SMTP_USE_TLS"))
    smtp_start_tls: bool = Field(default=False, validation_alias=_alias("SMTP_START_TLS"))
    smtp_username: str | None = Field(default=None, validation_alias=_alias("SMTP_USERNAME"))
    smtp_password: SecretStr | None = Field(default=None, validation_alias=_alias("SMTP_PASSWORD"))
    smtp_sender: str = Field(
        default="Emporium <no-reply@emporium.local>", validation_alias=_alias("SMTP_SENDER")
    )
    smtp_pool_size: int = Field(
        default=16,
        ge=0,
        le=64,
        validation_alias=_alias("SMTP_POOL_SIZE"),
        description="SMTP connections a process keeps and uses at once (0: one per email). "
        "The reset email job holds its transaction while SMTP answers, so fewer than the "
        "jobs running at once makes them queue for a connection.",
    )
    run_outbox_relay: bool = Field(
        default=True, description="Publish outbox events from this process."
    )
    # --- the worker and the scheduler (python -m users.worker / users.scheduler); the rest
    # of their settings are the kit's (JobsSettings) ---
    jobs_queue: str = Field(
        default="users.jobs",
        min_length=1,
        max_length=200,
        description="The users job queue, shared by the app (which enqueues) and every worker.",
    )
    worker_concurrency: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Jobs one worker process runs at once (an email job waits on SMTP).",
    )
    worker_metrics_port: int = Field(
        default=9101,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus /metrics (0: none); with several "
        "worker processes, process i serves it on this port + i.",
    )
    cleanup_interval_seconds: int = Field(
        default=3600,
        ge=1,
        description="How often the scheduler runs the clean-ups (expired sessions and reset "
        "tokens; old outbox and inbox rows).",
    )

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        checks = (
            password_problem(
                "ADMIN_PASSWORD",
                self.admin_password.get_secret_value(),
                development_default=DEV_ADMIN_PASSWORD,
            ),
            secret_problem(
                "USERS_CURSOR_SECRET",
                self.cursor_secret.get_secret_value(),
                development_default=DEV_CURSOR_SECRET,
            ),
            None
            if self.jwt_private_key is not None
            else "USERS_JWT_PRIVATE_KEY: is not set; production never generates its signing "
            "key (every replica must sign with the same one)",
            https_url_problem("PUBLIC_WEB_URL", self.public_web_url),
        )
        return [*problems, *(problem for problem in checks if problem)]

    @property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings(
            url=self.database_url, pool_size=self.db_pool_size, max_overflow=self.db_max_overflow
        )

    @property
    def smtp(self) -> SmtpSettings:
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            use_tls=self.smtp_use_tls,
            start_tls=self.smtp_start_tls,
            username=self.smtp_username,
            password=self.smtp_password,
            sender=self.smtp_sender,
            pool_size=self.smtp_pool_size,
        )
