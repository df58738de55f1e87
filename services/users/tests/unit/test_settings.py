from __future__ import annotations

import pytest
from pydantic import ValidationError

from users.settings import DEV_ADMIN_PASSWORD, DEV_CURSOR_SECRET, UsersSettings

PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"


SAFE = {
    "environment": "production",
    "admin_password": "a-real-admin-secret-1",
    "cursor_secret": "s" * 32,
    "jwt_private_key": PEM,
    "public_web_url": "https://shop.example.com",
    "amqp_url": "amqp://users:rabbit-secret@mq.internal:5672/",
}


@pytest.mark.parametrize(
    ("override", "setting", "why"),
    [
        ({"admin_password": DEV_ADMIN_PASSWORD}, "ADMIN_PASSWORD", "development default"),
        ({"admin_password": "short1"}, "ADMIN_PASSWORD", "weak"),
        ({"admin_password": "onlylettersatall"}, "ADMIN_PASSWORD", "weak"),
        ({"cursor_secret": DEV_CURSOR_SECRET}, "USERS_CURSOR_SECRET", "development default"),
        ({"cursor_secret": "too-short"}, "USERS_CURSOR_SECRET", "shorter than 32"),
        ({"jwt_private_key": None}, "USERS_JWT_PRIVATE_KEY", "not set"),
        ({"public_web_url": "http://shop.example.com"}, "PUBLIC_WEB_URL", "https"),
        ({"amqp_url": "amqp://guest:guest@mq:5672/"}, "AMQP_URL", "guest"),
        ({"amqp_url": "amqp://mq:5672/"}, "AMQP_URL", "guest"),
    ],
)
def test_production_refuses_each_development_default_naming_the_setting(
    override: dict[str, object], setting: str, why: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        UsersSettings(**{**SAFE, **override})
    message = str(refused.value)
    assert f"{setting}: " in message
    assert why in message


def test_production_lists_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as refused:
        UsersSettings(environment="production")
    message = str(refused.value)
    for setting in ("ADMIN_PASSWORD", "USERS_CURSOR_SECRET", "USERS_JWT_PRIVATE_KEY"):
        assert setting in message
    assert "PUBLIC_WEB_URL" in message
    assert "AMQP_URL" in message


def test_production_starts_with_real_secrets_and_development_with_defaults() -> None:
    production = UsersSettings(**SAFE)  # type: ignore[arg-type]
    assert production.environment == "production"
    development = UsersSettings(environment="development")
    assert development.admin_password.get_secret_value() == DEV_ADMIN_PASSWORD


def test_contract_variables_are_read_by_their_exact_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_EMAIL", "boss@example.com")
    monkeypatch.setenv("PUBLIC_WEB_URL", "https://shop.example.com")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_FAILURES", "3/minute")
    settings = UsersSettings()
    assert settings.admin_email == "boss@example.com"
    assert settings.public_web_url == "https://shop.example.com"
    assert settings.rate_limit_login_failures == "3/minute"
