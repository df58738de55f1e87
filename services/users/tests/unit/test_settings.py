from __future__ import annotations

import pytest
from pydantic import ValidationError

from users.settings import DEV_ADMIN_PASSWORD, UsersSettings

PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"


def test_production_refuses_the_development_admin_password() -> None:
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD must be set in production"):
        UsersSettings(environment="production", cursor_secret="s" * 32, jwt_private_key=PEM)


def test_production_requires_a_cursor_secret_and_a_signing_key() -> None:
    with pytest.raises(ValidationError, match="USERS_CURSOR_SECRET"):
        UsersSettings(environment="production", admin_password="real-secret-1", jwt_private_key=PEM)
    with pytest.raises(ValidationError, match="USERS_JWT_PRIVATE_KEY"):
        UsersSettings(
            environment="production", admin_password="real-secret-1", cursor_secret="s" * 32
        )


def test_production_starts_with_real_secrets_and_development_with_defaults() -> None:
    production = UsersSettings(
        environment="production",
        admin_password="real-secret-1",
        cursor_secret="s" * 32,
        jwt_private_key=PEM,
    )
    assert production.is_production
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
