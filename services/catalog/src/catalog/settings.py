"""Configuration of the catalogue service, from environment variables.

Service-specific variables carry the ``CATALOG_`` prefix; Redis, RabbitMQ, the
dead-letters queue, logging and the body limit come unprefixed from
:class:`emporium_kit.settings.ServiceSettings`, shared by every process of one system.

Other parts of the service add their settings in the marked sections below
(inventory: the order-event consumers; exchange rates: the rates provider,
its cache and refresh job).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from emporium_kit.database import DatabaseSettings
from emporium_kit.settings import ServiceSettings, secret_problem

DEV_CURSOR_SECRET = "dev-catalog-cursor-secret-change-me"  # noqa: S105 - refused in production


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8002, description="HTTP port of the catalogue service.")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_catalog",
        description="The catalogue service's own PostgreSQL database.",
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        description="Connections kept open. Overflow connections are closed on return, "
        "so a pool that is too small churns connections under load.",
    )
    db_max_overflow: int = Field(
        default=5, ge=0, description="Connections opened beyond the pool under load."
    )
    db_statement_timeout_ms: int = Field(
        default=5000, ge=100, description="Longest a single SQL statement may run."
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
        default=SecretStr(DEV_CURSOR_SECRET),
        description="HMAC key that signs the product listing's page cursors.",
    )
    run_outbox_relay: bool = Field(
        default=True, description="Publish outbox events from this process."
    )

    # --- inventory ---
    # The order-event consumers (python -m catalog.consumers): stock reservations.
    orders_queue: str = Field(
        default="catalog.orders",
        description="The quorum queue the catalogue consumes order events from "
        "(orders.order_placed.v1, orders.order_paid.v1, orders.order_cancelled.v1); "
        "<queue>.retry holds retries, failures past the limit go to DEAD_LETTERS_QUEUE.",
    )
    consumer_prefetch: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Order events one consumer process handles at once (each is acked "
        "after its transaction committed).",
    )
    consumer_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Attempts of an order event whose handling fails with an error that "
        "can pass (database down, deadlock) before it is dead-lettered; errors that "
        "cannot pass (a malformed event, a payment for an unknown reservation) are "
        "dead-lettered at once.",
    )
    consumer_retry_base_seconds: float = Field(
        default=1.0, gt=0, description="Backoff base of a retried order event (full jitter)."
    )
    consumer_retry_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest backoff of a retried order event."
    )
    consumer_delivery_limit: int = Field(
        default=10,
        ge=1,
        description="The queue's x-delivery-limit: the broker's own safety net for a "
        "message whose handling crashes the process every time (it lands in <queue>.dlq).",
    )
    consumers_run_outbox_relay: bool = Field(
        default=True,
        description="Publish outbox rows (the stock events the consumers write) from the "
        "consumer process too, so stock answers go out while the API process is down; "
        "relays share the outbox without publishing a row twice (SKIP LOCKED).",
    )

    # --- exchange rates ---
    # (the rates provider, its Redis cache and the refresh job add their settings here)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        cursor = secret_problem(
            "CATALOG_CURSOR_SECRET",
            self.cursor_secret.get_secret_value(),
            development_default=DEV_CURSOR_SECRET,
        )
        return [*problems, *([cursor] if cursor else [])]

    @property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings(
            url=self.database_url,
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            statement_timeout_ms=self.db_statement_timeout_ms,
        )

    @property
    def jwks_url(self) -> str:
        return f"{self.users_url.rstrip('/')}/.well-known/jwks.json"
