"""Settings shared by every service, read from environment variables.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``USERS_``, ``GATEWAY_``...). Variables every process shares (the environment,
Redis, RabbitMQ, logging) are read without a prefix so one ``.env`` serves all.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Annotated, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]


def split_commas(value: object) -> object:
    """``"a, b,,c"`` → ``("a", "b", "c")``; anything else (a default, a tuple) unchanged."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is no IP network (CIDR)") from None
    return value


CommaSeparated = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_commas)]
"""A list-valued setting. Every list setting of every service has this one format:
comma-separated (``GATEWAY_REQUIRED_UPSTREAMS=users,catalog``), never JSON."""

Networks = Annotated[CommaSeparated, AfterValidator(_networks)]
"""Comma-separated CIDRs (``10.0.0.0/8, ::1/128``), each checked at start-up."""

MIN_SECRET_LENGTH = 32
MIN_PASSWORD_LENGTH = 12


def secret_problem(name: str, value: str, *, development_default: str) -> str | None:
    """Why ``value`` is no production secret for setting ``name``, or None."""
    if value == development_default:
        return f"{name}: is the development default; set a random secret of its own"
    if len(value) < MIN_SECRET_LENGTH:
        return f"{name}: is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def password_problem(name: str, value: str, *, development_default: str) -> str | None:
    """Why ``value`` is no production password for setting ``name``, or None."""
    if value == development_default:
        return f"{name}: is the development default documented in the README"
    if (
        len(value) < MIN_PASSWORD_LENGTH
        or not any(ch.isalpha() for ch in value)
        or not any(ch.isdigit() for ch in value)
    ):
        return (
            f"{name}: is weak; use at least {MIN_PASSWORD_LENGTH} characters "
            "with letters and digits"
        )
    return None


def https_url_problem(name: str, value: str) -> str | None:
    """Why ``value`` is no production URL for links that people follow, or None."""
    if urlsplit(value).scheme != "https" or not urlsplit(value).hostname:
        return f"{name}: must be an https URL (links in emails carry secrets), got {value!r}"
    return None


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
    dead_letters_queue: str = Field(
        default="emporium.dead-letters",
        min_length=1,
        max_length=255,
        validation_alias=AliasChoices("DEAD_LETTERS_QUEUE"),
        description="The one queue every dead letter of this system goes to (ADR 0013).",
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

    def production_problems(self) -> list[str]:
        """What makes these settings unsafe in production, one ``SETTING: why`` each.

        Every service's settings extend this (calling ``super()``); with
        ``ENVIRONMENT=production`` the settings refuse to load while any is left.
        """
        problems: list[str] = []
        amqp = urlsplit(self.amqp_url)
        if (amqp.username or "guest") == "guest" or (amqp.password or "guest") == "guest":
            problems.append(
                "AMQP_URL: uses RabbitMQ's default guest credentials; "
                "give this service a user of its own"
            )
        return problems

    @model_validator(mode="after")
    def _refuse_unsafe_production_settings(self) -> Self:
        if self.environment == "production":
            problems = self.production_problems()
            if problems:
                raise ValueError(
                    "refusing to start with ENVIRONMENT=production: " + "; ".join(problems)
                )
        return self


class JobsSettings(ServiceSettings):
    """The settings of a service that runs jobs: its worker (``python -m
    <service>.worker``), its scheduler (``python -m <service>.scheduler``) and the
    app that enqueues. Read with the service's prefix, like the rest of its settings;
    the service gives ``jobs_queue`` and ``worker_metrics_port`` their defaults (its
    own queue, its own port)."""

    jobs_queue: str = Field(
        min_length=1,
        max_length=200,
        description="The service's job queue (the app and the scheduler send, every "
        "worker consumes).",
    )
    jobs_retry_base_seconds: float = Field(
        default=1.0, gt=0, description="Scale of a failed job's exponential backoff (full jitter)."
    )
    jobs_retry_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest wait before a job's next attempt."
    )
    worker_concurrency: int = Field(
        default=10, ge=1, le=1000, description="Jobs one worker process runs at once."
    )
    worker_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes the worker runs on the one job queue (up to one per "
        "core); process i serves /metrics on worker_metrics_port + i.",
    )
    worker_metrics_port: int = Field(
        ge=0, le=65535, description="Port of the worker's Prometheus /metrics (0: none)."
    )
    cleanup_interval_seconds: int = Field(
        default=3600,
        ge=1,
        description="How often the scheduler runs the service's clean-ups (old outbox and "
        "inbox rows among them).",
    )
    prune_messages_after_days: int = Field(
        default=7,
        ge=1,
        description="Published outbox rows and processed inbox rows older than this are "
        "deleted (an inbox row must outlive any redelivery of its message).",
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], service: str) -> SettingsT:
    """``cls()`` from the environment; on invalid settings, say which and exit 2.

    For a process entry point: the operator gets one line per broken setting
    instead of a traceback.
    """
    try:
        return cls()
    except ValidationError as exc:
        lines = [f"{service}: invalid configuration, not starting:"]
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"  - {where + ': ' if where else ''}{message}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
