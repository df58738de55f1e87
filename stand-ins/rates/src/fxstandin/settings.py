"""Configuration of the rates stand-in, read from ``FXSTANDIN_*`` environment variables."""

from datetime import date

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StandInSettings(BaseSettings):
    """Where the stand-in listens, and how it behaves when it starts."""

    model_config = SettingsConfigDict(env_prefix="FXSTANDIN_", frozen=True)

    host: str = Field(default="127.0.0.1", description="FXSTANDIN_HOST: address the API binds.")
    port: int = Field(
        default=8030, ge=0, le=65535, description="FXSTANDIN_PORT: HTTP port; 0 picks a free one."
    )
    rates_date: date | None = Field(
        default=None,
        description="FXSTANDIN_RATES_DATE: the `date` every answer carries (default: today, UTC).",
    )
    control: bool = Field(
        default=True,
        description="FXSTANDIN_CONTROL: serve the test-only /_control endpoints.",
    )
    fail_status: int | None = Field(
        default=None,
        ge=400,
        le=599,
        description="FXSTANDIN_FAIL_STATUS: answer every rates request with this status "
        "(test-only; starts the stand-in failing).",
    )
    delay_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=300.0,
        description="FXSTANDIN_DELAY_SECONDS: wait this long before answering a rates request "
        "(test-only; a slow provider).",
    )
    log_level: str = Field(default="INFO", description="FXSTANDIN_LOG_LEVEL: logging level.")
