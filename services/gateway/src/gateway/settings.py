"""The gateway's configuration, read from environment variables.

Gateway variables carry the ``GATEWAY_`` prefix. The few that the public
contract names (``GATEWAY_PORT`` and the ``RATE_LIMIT_*`` rates) are read with
exactly those names; Redis, RabbitMQ, logging and the body limit come unprefixed
from :class:`emporium_kit.settings.ServiceSettings`.

Lists (``GATEWAY_TRUSTED_PROXIES``, ``GATEWAY_REQUIRED_UPSTREAMS``,
``METRICS_ALLOWED_NETWORKS``) are comma-separated.
"""

from __future__ import annotations

from typing import Literal

from limits import parse
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from emporium_kit.settings import CommaSeparated, Networks, ServiceSettings

UPSTREAM_NAMES = ("users", "catalog", "orders", "ops")

RevocationFailMode = Literal["open", "closed"]


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    # --- serving -----------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Interface uvicorn binds to.")
    port: int = Field(
        default=8000,
        validation_alias=AliasChoices("GATEWAY_PORT"),
        description="The gateway's port (contract: GATEWAY_PORT).",
    )
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    graceful_shutdown_seconds: int = Field(
        default=10, ge=0, description="Seconds in-flight requests get to finish on shutdown."
    )

    # --- upstream services --------------------------------------------------
    users_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of the users service."
    )
    catalog_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL of the catalog service."
    )
    orders_url: str = Field(
        default="http://127.0.0.1:8003", description="Base URL of the orders service."
    )
    ops_url: str = Field(
        default="http://127.0.0.1:8004",
        description="Base URL of the ops service (dead letters, ADR 0013).",
    )
    required_upstreams: CommaSeparated = Field(
        default=("users", "catalog", "ops"),
        description=(
            "Upstreams whose /health/ready must answer for the gateway to be ready: every "
            "service `make run` starts. Services not built yet (orders) are left out, so "
            "the gateway can be ready without them."
        ),
    )
    upstream_connect_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Time to open a connection to an upstream."
    )
    upstream_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time an upstream may take between bytes (504 after)."
    )
    upstream_write_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Time to send a request body to an upstream (control-plane client; a stalled "
            "proxied write is bounded by the read timeout, ADR 0006)."
        ),
    )
    upstream_pool_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Time to wait for a free pooled connection (503 after)."
    )
    upstream_max_connections: int = Field(
        default=200, ge=1, description="Connections per upstream in its pool."
    )
    upstream_max_keepalive: int = Field(
        default=50,
        ge=0,
        description=(
            "Idle keep-alive connections kept per upstream (control-plane client; the proxy "
            "pool keeps idle connections up to GATEWAY_UPSTREAM_MAX_CONNECTIONS for 15 s)."
        ),
    )
    retry_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts for idempotent methods on a connection error (1 = no retry).",
    )
    retry_backoff_seconds: float = Field(
        default=0.05, ge=0, description="First retry delay; doubles, with jitter, up to 0.5 s."
    )
    breaker_failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failed requests that open an upstream's circuit."
    )
    breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="Seconds an open circuit refuses calls before a trial."
    )

    # --- authentication -----------------------------------------------------
    jwks_path: str = Field(
        default="/.well-known/jwks.json", description="Path of the JWKS on the users service."
    )
    jwks_min_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        description="At most one JWKS refresh per this interval when unknown kids appear.",
    )
    token_leeway_seconds: int = Field(
        default=5, ge=0, description="Clock skew tolerated on exp/iat."
    )
    revocation_fail_mode: RevocationFailMode = Field(
        default="open",
        description=(
            "With Redis down: 'open' accepts tokens whose signature and expiry verify "
            "(logged and counted), 'closed' refuses every token. See ADR 0003."
        ),
    )

    # --- client IPs ---------------------------------------------------------
    trusted_proxies: Networks = Field(
        default=(),
        description=(
            "CIDRs of proxies whose X-Forwarded-For is believed; any other peer is the client."
            " Their traceparent's sampled flag is followed; anyone else's is decided again."
        ),
    )

    metrics_allowed_networks: Networks = Field(
        default=(
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ),
        validation_alias=AliasChoices("METRICS_ALLOWED_NETWORKS"),
        description="CIDRs of clients that may read /metrics (contract: "
        "METRICS_ALLOWED_NETWORKS); anyone else gets 404.",
    )

    # --- rate limits (names fixed by the contract) --------------------------
    rate_limit_anonymous: str = Field(
        default="300/minute",
        validation_alias=AliasChoices("RATE_LIMIT_ANONYMOUS"),
        description="Per client IP, requests without a valid token.",
    )
    rate_limit_user: str = Field(
        default="600/minute",
        validation_alias=AliasChoices("RATE_LIMIT_USER"),
        description="Per user, requests with a valid token.",
    )
    rate_limit_auth: str = Field(
        default="30/minute",
        validation_alias=AliasChoices("RATE_LIMIT_AUTH"),
        description="Per client IP on register, login, refresh and password reset.",
    )

    # --- Redis usage -------------------------------------------------------
    redis_key_prefix: str = Field(
        default="gateway:", description="Prefix of every Redis key the gateway writes."
    )
    redis_timeout_seconds: float = Field(
        default=0.25, gt=0, description="Connect and command timeout for Redis calls."
    )
    redis_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        description="After a Redis failure, requests skip Redis for this long before a retry.",
    )

    # --- response cache -----------------------------------------------------
    cache_ttl_seconds: int = Field(
        default=30, ge=1, description="Lifetime of cached anonymous catalogue responses."
    )
    cache_local_entries: int = Field(
        default=1024,
        ge=0,
        description="Pages each gateway process also keeps in memory (0 turns the tier off).",
    )
    cache_local_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a page stays in a process's memory; catalogue events empty it "
        "at once, so this only bounds staleness while RabbitMQ is unreachable.",
    )
    cache_max_body_bytes: int = Field(
        default=1_048_576, ge=0, description="Larger responses are streamed, not cached."
    )
    cache_invalidation_binding: str = Field(
        default="catalog.#", description="Routing key pattern whose events clear the cache."
    )
    events_exchange: str = Field(
        default="emporium.events", description="Topic exchange carrying domain events."
    )
    amqp_reconnect_seconds: float = Field(
        default=5.0, gt=0, description="Delay between attempts to reach RabbitMQ."
    )

    # --- docs ---------------------------------------------------------------
    openapi_refresh_seconds: float = Field(
        default=60.0, gt=0, description="How often the services' OpenAPI documents are fetched."
    )

    @field_validator("required_upstreams")
    @classmethod
    def _known_upstreams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(UPSTREAM_NAMES))
        if unknown:
            raise ValueError(f"unknown upstreams: {', '.join(unknown)}")
        return value

    @field_validator("rate_limit_anonymous", "rate_limit_user", "rate_limit_auth")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse(value)
        return value

    def upstream_urls(self) -> dict[str, str]:
        return {
            "users": self.users_url,
            "catalog": self.catalog_url,
            "orders": self.orders_url,
            "ops": self.ops_url,
        }
