"""Configuration of the catalogue service, from environment variables.

Service-specific variables carry the ``CATALOG_`` prefix; Redis, RabbitMQ, the
dead-letters queue, logging and the body limit come unprefixed from
:class:`emporium_kit.settings.ServiceSettings`, shared by every process of one system.

Other parts of the service add their settings in the marked sections below
(inventory: the order-event consumers; exchange rates: the rates provider,
its cache and refresh job).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from emporium_kit.database import DatabaseSettings
from emporium_kit.settings import JobsSettings, secret_problem

DEV_CURSOR_SECRET = "dev-catalog-cursor-secret-change-me"  # noqa: S105 - refused in production


class CatalogSettings(JobsSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8002, description="HTTP port of the catalogue service.")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_catalog",
        description="The catalogue service's own PostgreSQL database.",
    )
    db_pool_size: int = Field(
        default=25,
        ge=1,
        description="Connections kept open. Overflow connections are closed on return, "
        "so a pool that is too small churns connections under load.",
    )
    db_max_overflow: int = Field(
        default=0,
        ge=0,
        description="Connections opened beyond the pool under load, and closed again on "
        "return (under a steady load they were opened and closed all the time: a TLS "
        "attempt and a handshake each, several percent of the process's CPU; requests "
        "beyond the pool wait for a connection instead).",
    )
    db_statement_timeout_ms: int = Field(
        default=5000, ge=100, description="Longest a single SQL statement may run."
    )
    db_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = Field(
        default="force_custom_plan",
        description="PostgreSQL plan_cache_mode of the catalog's connections. "
        "force_custom_plan plans every execution of a prepared statement with its "
        "values: a listing's generic plan knows neither the category's ids nor the "
        "price range, and read 13,700 buffers where the custom plan reads 1,500.",
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
        # With the default backoff (full jitter, 1 s base, 60 s cap) 12 attempts wait
        # about 3 minutes in all (6 minutes at most): an order event outlives a database
        # restart or failover. 5 waited 7.5 s on average, 15 s at most.
        default=12,
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
    consumers_metrics_port: int = Field(
        default=9103,
        ge=0,
        le=65535,
        description="Port of the consumer process's Prometheus /metrics (0: none); it "
        "answers once the consumer is consuming.",
    )

    # --- exchange rates ---
    # ?currency= on product reads: a Frankfurter-shaped rates provider (the fxstandin
    # stand-in in development), its last table in Redis, and the worker's refresh job.
    fx_provider_url: str = Field(
        default="http://127.0.0.1:8030",
        description="Base URL of the exchange-rates provider (Frankfurter's API: "
        "GET /latest?base=...).",
    )
    fx_base_currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="The base of the cached rate table; other pairs are crossed through it.",
    )
    fx_refresh_seconds: int = Field(
        default=3600,
        ge=1,
        description="How often the scheduler has the worker fetch the rates into Redis.",
    )
    fx_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Deadline of each attempt of the refresh job's fetch."
    )
    fx_retry_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts of the refresh job's fetch (a GET: every transient failure "
        "is retried, full-jitter backoff); the job itself is retried after that.",
    )
    fx_request_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Deadline of the one fetch a product read may make when no rates are "
        "cached at all (one attempt; reads otherwise never call the provider).",
    )
    fx_fetch_when_empty: bool = Field(
        default=True,
        description="Let a product read fetch the rates (once per process at a time) when "
        "Redis has none yet; false: such reads answer fx_error until the job ran.",
    )
    fx_breaker_threshold: int = Field(
        default=5,
        ge=1,
        description="Failed calls to the rates provider in a row that open its circuit "
        "(calls then fail at once, without touching the network).",
    )
    fx_breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="How long the circuit stays open before a trial call."
    )
    fx_cache_key_prefix: str = Field(
        default="catalog:fx:",
        min_length=1,
        description="Prefix of the Redis keys holding the rate tables.",
    )
    fx_local_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long an API process reuses the table it last read from Redis "
        "(0: read Redis on every converted read).",
    )
    fx_read_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Longest a product read waits for its conversion (Redis, or the first "
        "fetch); after it the read answers with fx_error.",
    )
    # The worker (python -m catalog.worker) and scheduler (python -m catalog.scheduler):
    # the rest of their settings are the kit's (JobsSettings).
    jobs_queue: str = Field(
        default="catalog.jobs",
        min_length=1,
        max_length=200,
        description="The catalogue's job queue (the scheduler sends, every worker consumes).",
    )
    worker_metrics_port: int = Field(
        default=9102,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus /metrics (0: none); process i of "
        "CATALOG_WORKER_PROCESSES serves it on this port + i.",
    )

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
            plan_cache_mode=self.db_plan_cache_mode,
        )

    @property
    def jwks_url(self) -> str:
        return f"{self.users_url.rstrip('/')}/.well-known/jwks.json"
