"""Configuration of the ops service, from environment variables.

Service-specific variables carry the ``OPS_`` prefix; RabbitMQ, the dead-letters
queue (``DEAD_LETTERS_QUEUE``), logging and the body limit come unprefixed from
:class:`emporium_kit.settings.ServiceSettings`, shared by every process of one system.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from emporium_kit.database import DatabaseSettings
from emporium_kit.settings import ServiceSettings, secret_problem

DEV_CURSOR_SECRET = "dev-ops-cursor-secret-change-me"  # noqa: S105 - refused in production


class OpsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPS_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8004, description="HTTP port of the ops service.")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_ops",
        description="The ops service's own PostgreSQL database.",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept open.")
    db_max_overflow: int = Field(
        default=5, ge=0, description="Connections opened beyond the pool under load."
    )

    users_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL of the users service, whose /.well-known/jwks.json holds the "
        "keys that verify access tokens.",
    )
    users_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Timeout of each JWKS request to the users service."
    )
    jwks_min_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        description="At most one JWKS fetch per this interval when tokens with unknown key "
        "ids arrive (doubling after each failed fetch).",
    )
    cursor_secret: SecretStr = Field(
        default=SecretStr(DEV_CURSOR_SECRET), description="HMAC key that signs page cursors."
    )

    run_dead_letter_consumer: bool = Field(
        default=True,
        description="Consume the dead-letters queue (DEAD_LETTERS_QUEUE) into the database "
        "from this process.",
    )
    consumer_prefetch: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Dead letters the consumer holds unacknowledged at once (each is acked "
        "only after its row committed).",
    )
    broker_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Time a replay may take to reach RabbitMQ and have its publish confirmed "
        "(503 after), and the consumer's connect timeout.",
    )

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        cursor = secret_problem(
            "OPS_CURSOR_SECRET",
            self.cursor_secret.get_secret_value(),
            development_default=DEV_CURSOR_SECRET,
        )
        return [*problems, *([cursor] if cursor else [])]

    @property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings(
            url=self.database_url, pool_size=self.db_pool_size, max_overflow=self.db_max_overflow
        )

    @property
    def jwks_url(self) -> str:
        return f"{self.users_url.rstrip('/')}/.well-known/jwks.json"
