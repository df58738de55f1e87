"""Schemathesis against the running users service: no input yields a server error,
and no request that the OpenAPI document allows is refused as malformed.

The service runs as a real process (uvicorn, as in production) on this worker's
database; generated requests carry an admin token so protected routes are
explored past authentication, and a second run goes without one. The
positive-data check fails when the document promises more than the validation
accepts (a password without a digit, a reserved email domain, a token of another
shape), so the published schemas cannot drift from the rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.specs.openapi.adapter
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from emporium_kit.pagination import InvalidCursor
from emporium_kit.problems import problem_type
from emporium_testkit.fuzzing import accepts_positive_data
from emporium_testkit.processes import ChildProcess, free_port
from users.domain.errors import ResetTokenInvalid
from users.settings import UsersSettings


@pytest.fixture(scope="module")
def users_process(settings: UsersSettings) -> Iterator[str]:
    port = free_port()
    env = {
        "USERS_PORT": str(port),
        "USERS_DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "USERS_BCRYPT_ROUNDS": "4",
        "USERS_JWT_PRIVATE_KEY_FILE": str(settings.jwt_private_key_file),
        "USERS_RUN_OUTBOX_RELAY": "false",
        "USERS_JOBS_QUEUE": settings.jobs_queue,
        "ADMIN_EMAIL": settings.admin_email,
        "ADMIN_PASSWORD": settings.admin_password.get_secret_value(),
        "SMTP_PORT": str(settings.smtp_port),
        "LOG_LEVEL": "WARNING",
    }
    process = ChildProcess("users", env=env)
    base = f"http://127.0.0.1:{port}"
    process.wait_until_ready(f"{base}/health/live")
    yield base
    process.stop()


@pytest.fixture(scope="module")
def admin_headers(users_process: str, settings: UsersSettings) -> dict[str, str]:
    response = httpx.post(
        f"{users_process}/api/v1/auth/login",
        json={
            "email": settings.admin_email,
            "password": settings.admin_password.get_secret_value(),
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def users_schema(users_process: str) -> Any:
    return schemathesis.openapi.from_url(f"{users_process}/openapi.json")


schema = schemathesis.pytest.from_fixture("users_schema")

CHECKS = [
    not_a_server_error,
    # A generated reset token or cursor has the published shape but was never issued.
    accepts_positive_data(
        unissued_value_problems={
            problem_type(ResetTokenInvalid.code),
            problem_type(InvalidCursor.code),
        }
    ),
]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@schema.parametrize()
@FUZZ
def test_no_request_fails_the_service_and_none_it_allows_is_refused_as_admin(
    case: Any, admin_headers: dict[str, str]
) -> None:
    case.call_and_validate(headers=admin_headers, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_no_request_fails_the_service_and_none_it_allows_is_refused_anonymously(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
