"""Settings shared by every service, read from environment variables.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``USERS_``, ``GATEWAY_``...). Variables every process shares (the environment,
Redis, RabbitMQ, logging) are read without a prefix so one ``.env`` serves all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Environment = Field(
        default="development",
        validation_alias=AliasChoices("ENVIRONMENT"),
        description="development, test or production; production refuses unsafe defaults.",
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_json: bool = Field(
        default=True,
        validation_alias=AliasChoices("LOG_JSON"),
        description="JSON lines (default) or human-readable console logs.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL")
    )
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", validation_alias=AliasChoices("AMQP_URL")
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        validation_alias=AliasChoices("MAX_BODY_BYTES"),
        description="Largest request body accepted on any method (413 above it).",
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        validation_alias=AliasChoices("MAX_HEADER_BYTES"),
        description="Largest request header block accepted (431 above it, before it is "
        "read whole; see emporium_kit.serving).",
    )
    health_check_timeout_seconds: float = Field(
        default=2.0, validation_alias=AliasChoices("HEALTH_CHECK_TIMEOUT_SECONDS")
    )
    prometheus_multiproc_dir: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR"),
        description="Set when a service runs several worker processes: /metrics then "
        "aggregates every worker's samples (prometheus-client multiprocess mode).",
    )

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


class DatabaseSettings(BaseSettings):
    """Pool settings for a service's own PostgreSQL database (embed in service settings)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    url: str
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout_seconds: float = 5.0
    pool_recycle_seconds: int = 1800
    statement_timeout_ms: int = 5000
    echo: bool = False
    pre_ping: bool = False
