"""List settings have one format in every service; the database part reads no environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from emporium_kit.database import DatabaseSettings
from emporium_kit.settings import CommaSeparated, Networks, ServiceSettings


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")

    names: CommaSeparated = ()
    networks: Networks = ("127.0.0.1/32",)


def test_list_settings_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_NAMES", " users, catalog,,orders ")
    monkeypatch.setenv("EXAMPLE_NETWORKS", "10.0.0.0/8, ::1/128")
    settings = ExampleSettings()
    assert settings.names == ("users", "catalog", "orders")
    assert settings.networks == ("10.0.0.0/8", "::1/128")


def test_defaults_stay_as_declared() -> None:
    assert ExampleSettings().networks == ("127.0.0.1/32",)


def test_a_json_list_is_not_a_second_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_NETWORKS", '["10.0.0.0/8"]')
    with pytest.raises(ValidationError, match="no IP network"):
        ExampleSettings()


def test_a_bad_network_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_NETWORKS", "10.0.0.0/8, not-a-network")
    with pytest.raises(ValidationError, match="'not-a-network' is no IP network"):
        ExampleSettings()


def test_database_settings_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "POOL_SIZE", "ECHO", "PRE_PING"):
        monkeypatch.setenv(name, "1")
    settings = DatabaseSettings(url="postgresql+asyncpg://db/x")
    assert (settings.pool_size, settings.echo, settings.pre_ping) == (10, False, False)
    with pytest.raises(ValidationError):
        DatabaseSettings()  # type: ignore[call-arg]
