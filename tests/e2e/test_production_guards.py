"""With ENVIRONMENT=production, every service refuses development defaults at start-up.

Each service is started as a real process (``python -m <service>``), the way
an operator would, and must exit at once with status 2, naming each setting
that is unsafe and why, before it opens a port.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emporium_testkit.processes import free_port

PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
SAFE_AMQP = "amqp://emporium:rabbit-secret-1@127.0.0.1:5672/"


def _start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("USERS_", "GATEWAY_", "CATALOG_"))
    }
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**clean, "ENVIRONMENT": "production", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "env", "expected"),
    [
        (
            "users",
            {"USERS_PORT": "0"},
            [
                "AMQP_URL: uses RabbitMQ's default guest credentials",
                "ADMIN_PASSWORD: is the development default",
                "USERS_CURSOR_SECRET: is the development default",
                "USERS_JWT_PRIVATE_KEY: is not set",
                "PUBLIC_WEB_URL: must be an https URL",
            ],
        ),
        (
            "users",
            {
                "AMQP_URL": SAFE_AMQP,
                "ADMIN_PASSWORD": "password",
                "USERS_CURSOR_SECRET": "c" * 40,
                "USERS_JWT_PRIVATE_KEY": PEM,
                "PUBLIC_WEB_URL": "https://shop.example.com",
            },
            ["ADMIN_PASSWORD: is weak"],
        ),
        ("gateway", {}, ["AMQP_URL: uses RabbitMQ's default guest credentials"]),
        (
            "catalog",
            {},
            [
                "AMQP_URL: uses RabbitMQ's default guest credentials",
                "CATALOG_CURSOR_SECRET: is the development default",
            ],
        ),
        (
            "catalog",
            {"AMQP_URL": SAFE_AMQP, "CATALOG_CURSOR_SECRET": "short"},
            [
                "CATALOG_CURSOR_SECRET:",
            ],
        ),
    ],
)
def test_a_service_refuses_to_start_in_production_naming_each_unsafe_setting(
    module: str, env: dict[str, str], expected: list[str]
) -> None:
    port_var = f"{module.upper()}_PORT"
    result = _start(module, {port_var: str(free_port()), **env})

    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{module}: invalid configuration, not starting" in result.stderr
    for line in expected:
        assert line in result.stderr
    assert "Traceback" not in result.stderr
