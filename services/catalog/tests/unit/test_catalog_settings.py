from __future__ import annotations

import pytest
from pydantic import ValidationError

from catalog.settings import DEV_CURSOR_SECRET, CatalogSettings

SAFE = {
    "environment": "production",
    "cursor_secret": "s" * 32,
    "amqp_url": "amqp://catalog:rabbit-secret@mq.internal:5672/",
}


@pytest.mark.parametrize(
    ("override", "setting", "why"),
    [
        ({"cursor_secret": DEV_CURSOR_SECRET}, "CATALOG_CURSOR_SECRET", "development default"),
        ({"cursor_secret": "too-short"}, "CATALOG_CURSOR_SECRET", "shorter than 32"),
        ({"amqp_url": "amqp://guest:guest@mq:5672/"}, "AMQP_URL", "guest"),
    ],
)
def test_production_refuses_each_development_default_naming_the_setting(
    override: dict[str, object], setting: str, why: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        CatalogSettings(**{**SAFE, **override})
    message = str(refused.value)
    assert setting in message
    assert why in message


def test_production_starts_with_its_own_secrets() -> None:
    assert CatalogSettings(**SAFE).environment == "production"


def test_the_defaults_serve_on_8002_with_emporium_catalog_and_users_jwks() -> None:
    settings = CatalogSettings()

    assert settings.port == 8002
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_catalog"
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert settings.run_outbox_relay is True


def test_variables_carry_the_catalog_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_PORT", "9002")
    monkeypatch.setenv("CATALOG_USERS_URL", "http://users.internal:8001/")
    monkeypatch.setenv("CATALOG_DB_POOL_SIZE", "7")
    monkeypatch.setenv("CATALOG_DB_PLAN_CACHE_MODE", "auto")
    monkeypatch.setenv("PORT", "1")

    settings = CatalogSettings()

    assert settings.port == 9002
    assert settings.jwks_url == "http://users.internal:8001/.well-known/jwks.json"
    assert settings.database.pool_size == 7
    assert settings.database.plan_cache_mode == "auto"


def test_connections_plan_each_execution_with_its_values_by_default() -> None:
    database = CatalogSettings().database

    assert database.plan_cache_mode == "force_custom_plan"
    assert database.max_overflow == 0


def test_an_unknown_plan_cache_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_DB_PLAN_CACHE_MODE", "sometimes")

    with pytest.raises(ValidationError):
        CatalogSettings()
