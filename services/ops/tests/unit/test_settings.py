from __future__ import annotations

import pytest
from pydantic import ValidationError

from ops.settings import DEV_CURSOR_SECRET, OpsSettings

SAFE = {
    "environment": "production",
    "cursor_secret": "s" * 32,
    "amqp_url": "amqp://ops:rabbit-secret@mq.internal:5672/",
}


@pytest.mark.parametrize(
    ("override", "setting", "why"),
    [
        ({"cursor_secret": DEV_CURSOR_SECRET}, "OPS_CURSOR_SECRET", "development default"),
        ({"cursor_secret": "too-short"}, "OPS_CURSOR_SECRET", "shorter than 32"),
        ({"amqp_url": "amqp://guest:guest@mq:5672/"}, "AMQP_URL", "guest"),
    ],
)
def test_production_refuses_each_development_default_naming_the_setting(
    override: dict[str, object], setting: str, why: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        OpsSettings(**{**SAFE, **override})
    message = str(refused.value)
    assert setting in message
    assert why in message


def test_production_starts_with_its_own_secrets() -> None:
    assert OpsSettings(**SAFE).environment == "production"


def test_the_defaults_serve_on_8004_with_emporium_ops_and_users_jwks() -> None:
    settings = OpsSettings()

    assert settings.port == 8004
    assert settings.database_url.endswith("/emporium_ops")
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert settings.dead_letters_queue == "emporium.dead-letters"
    assert settings.run_dead_letter_consumer is True


def test_variables_carry_the_ops_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_USERS_URL", "http://users.internal:8001/")
    monkeypatch.setenv("OPS_RUN_DEAD_LETTER_CONSUMER", "false")
    monkeypatch.setenv("DEAD_LETTERS_QUEUE", "emporium.dead-letters.staging")

    settings = OpsSettings()

    assert settings.jwks_url == "http://users.internal:8001/.well-known/jwks.json"
    assert settings.run_dead_letter_consumer is False
    assert settings.dead_letters_queue == "emporium.dead-letters.staging"
