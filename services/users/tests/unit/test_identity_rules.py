"""The identity rules, on in-memory fakes: no database, no network, milliseconds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from emporium_kit.email import EmailDeliveryFailed
from users.domain.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    LastAdminRemoval,
    RefreshTokenInvalid,
    RefreshTokenReused,
    ResetTokenInvalid,
    TooManyLoginFailures,
)
from users.domain.model import ClientInfo
from users.use_cases.bootstrap_admin import bootstrap_admin
from users.use_cases.change_roles import change_roles
from users.use_cases.confirm_password_reset import confirm_password_reset
from users.use_cases.jobs import SEND_PASSWORD_RESET_EMAIL
from users.use_cases.log_in import log_in
from users.use_cases.refresh_session import refresh_session
from users.use_cases.register_user import register_user
from users.use_cases.request_password_reset import request_password_reset

CLIENT = ClientInfo(user_agent="tests", ip="192.0.2.1")


async def _user_and_login(h: Any, email: str = "ann@example.com") -> Any:
    user = await register_user(h.ports, email=email, password="pass-1234", full_name="Ann")
    pair = await log_in(h.ports, email=email, password="pass-1234", client=CLIENT)
    return user, pair


async def test_registration_records_the_registered_event(harness: Any) -> None:
    user = await register_user(
        harness.ports, email="Ann@Example.com", password="pass-1234", full_name="Ann"
    )
    [(key, payload)] = harness.world.events
    assert key == "users.user_registered.v1"
    assert payload["user_id"] == str(user.id)
    assert payload["email"] == "ann@example.com"


async def test_duplicate_email_is_refused_case_insensitively(harness: Any) -> None:
    await register_user(harness.ports, email="ann@example.com", password="p-1234567", full_name="A")
    with pytest.raises(EmailAlreadyRegistered):
        await register_user(
            harness.ports, email="ANN@example.com", password="p-1234567", full_name="B"
        )


async def test_reused_refresh_token_revokes_the_family(harness: Any) -> None:
    _, pair = await _user_and_login(harness)
    rotated = await refresh_session(harness.ports, refresh_token=pair.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await refresh_session(harness.ports, refresh_token=pair.refresh_token)
    with pytest.raises(RefreshTokenInvalid):
        await refresh_session(harness.ports, refresh_token=rotated.refresh_token)
    [session] = harness.world.sessions.values()
    assert session.revoked_at is not None
    assert harness.revocations.sessions == [session.id]


async def test_expired_session_cannot_be_refreshed(harness: Any) -> None:
    _, pair = await _user_and_login(harness)
    harness.later(seconds=3601)
    with pytest.raises(RefreshTokenInvalid):
        await refresh_session(harness.ports, refresh_token=pair.refresh_token)


async def test_failed_logins_spend_the_budget_then_throttle(harness: Any) -> None:
    await register_user(harness.ports, email="b@example.com", password="pass-1234", full_name="B")
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await log_in(harness.ports, email="b@example.com", password="wrong", client=CLIENT)
    with pytest.raises(TooManyLoginFailures) as blocked:
        await log_in(harness.ports, email="b@example.com", password="pass-1234", client=CLIENT)
    assert (blocked.value.limit, blocked.value.retry_after) == (3, 60)


async def test_password_reset_ends_every_session_and_bumps_the_token_version(
    harness: Any,
) -> None:
    user, _ = await _user_and_login(harness)
    await log_in(harness.ports, email="ann@example.com", password="pass-1234", client=CLIENT)
    await request_password_reset(harness.ports, email="ANN@example.com")
    await harness.run_reset_jobs()
    [mail] = harness.reset_emails()
    assert mail["to"] == "ann@example.com"
    assert mail["minutes"] == 30
    await confirm_password_reset(harness.ports, token=mail["token"], new_password="new-pass-1")
    assert all(s.revoked_at for s in harness.world.sessions.values())
    assert len(harness.revocations.sessions) == 2
    assert harness.revocations.versions == {user.id: 2}
    with pytest.raises(ResetTokenInvalid):
        await confirm_password_reset(harness.ports, token=mail["token"], new_password="x-pass-12")


async def test_reset_token_expires(harness: Any) -> None:
    await _user_and_login(harness)
    await request_password_reset(harness.ports, email="ann@example.com")
    await harness.run_reset_jobs()
    harness.later(minutes=31)
    with pytest.raises(ResetTokenInvalid):
        await confirm_password_reset(
            harness.ports, token=harness.reset_emails()[0]["token"], new_password="new-pass-1"
        )


async def test_role_change_keeps_customer_and_protects_the_last_admin(harness: Any) -> None:
    await bootstrap_admin(harness.ports, email="root@example.com", password="root-pass-1")
    user, _ = await _user_and_login(harness)
    updated = await change_roles(harness.ports, user.id, ["staff"])
    assert updated.roles == ("customer", "staff")
    assert harness.revocations.versions[user.id] == 2
    admin = next(c.user for c in harness.world.users.values() if "admin" in c.user.roles)
    with pytest.raises(LastAdminRemoval):
        await change_roles(harness.ports, admin.id, ["customer"])


async def test_reset_email_is_not_sent_when_the_account_is_unknown(harness: Any) -> None:
    await request_password_reset(harness.ports, email="nobody@example.com")
    await harness.run_reset_jobs()
    assert harness.emails.sent == []
    assert harness.world.resets == {}


async def test_a_reset_request_enqueues_one_job_and_nothing_else_whether_or_not_the_account_exists(
    harness: Any,
) -> None:
    await register_user(
        harness.ports, email="known@example.com", password="pass-1234", full_name="K"
    )
    harness.world.events.clear()
    before = copy.deepcopy(harness.world)
    await request_password_reset(harness.ports, email=" Known@Example.com ")
    await request_password_reset(harness.ports, email="unknown@example.com")
    assert [name for name, _ in harness.world.jobs] == [SEND_PASSWORD_RESET_EMAIL.task_name] * 2
    assert [kwargs["email"] for _, kwargs in harness.world.jobs] == [
        "known@example.com",
        "unknown@example.com",
    ]
    assert all(set(kwargs) == {"email", "requested_at"} for _, kwargs in harness.world.jobs)
    harness.world.jobs.clear()
    assert harness.world == before
    assert harness.emails.sent == []


async def test_confirming_one_reset_token_ends_every_other_of_the_user(harness: Any) -> None:
    await _user_and_login(harness)
    for _ in range(3):
        await request_password_reset(harness.ports, email="ann@example.com")
    await harness.run_reset_jobs()
    first, second, third = (mail["token"] for mail in harness.reset_emails())
    await confirm_password_reset(harness.ports, token=second, new_password="new-pass-1")
    for other in (first, third):
        with pytest.raises(ResetTokenInvalid):
            await confirm_password_reset(harness.ports, token=other, new_password="other-pass-2")


async def test_at_most_the_hourly_budget_of_reset_emails_is_sent(harness: Any) -> None:
    await _user_and_login(harness)
    for _ in range(5):
        await request_password_reset(harness.ports, email="ann@example.com")
    await harness.run_reset_jobs()
    assert len(harness.reset_emails()) == 3
    assert len(harness.world.resets) == 3
    harness.later(minutes=59)
    await request_password_reset(harness.ports, email="ann@example.com")
    await harness.run_reset_jobs()
    assert len(harness.reset_emails()) == 3
    harness.later(minutes=1, seconds=1)
    await request_password_reset(harness.ports, email="ann@example.com")
    await harness.run_reset_jobs()
    assert len(harness.reset_emails()) == 4


async def test_a_refused_reset_email_leaves_no_token_and_spends_no_budget(harness: Any) -> None:
    await _user_and_login(harness)
    await request_password_reset(harness.ports, email="ann@example.com")
    harness.emails.refuse_next = True
    with pytest.raises(EmailDeliveryFailed):
        await harness.run_reset_jobs()
    assert harness.world.resets == {}
    # Delivered again, as the broker does after the rollback.
    harness.ran -= 1
    await harness.run_reset_jobs()
    [mail] = harness.reset_emails()
    await confirm_password_reset(harness.ports, token=mail["token"], new_password="new-pass-1")


async def test_a_duplicate_registration_is_refused_without_hashing(harness: Any) -> None:
    await register_user(harness.ports, email="dup@example.com", password="pass-1234", full_name="D")
    assert harness.hasher.hashed == 1
    for _ in range(3):
        with pytest.raises(EmailAlreadyRegistered):
            await register_user(
                harness.ports, email=" DUP@example.com", password="pass-5678", full_name="E"
            )
    assert harness.hasher.hashed == 1


async def test_a_bad_used_or_expired_reset_token_is_refused_without_hashing(harness: Any) -> None:
    await _user_and_login(harness)
    await request_password_reset(harness.ports, email="ann@example.com")
    await request_password_reset(harness.ports, email="ann@example.com")
    await harness.run_reset_jobs()
    used, expiring = (mail["token"] for mail in harness.reset_emails())
    await confirm_password_reset(harness.ports, token=used, new_password="new-pass-1")
    hashed = harness.hasher.hashed
    harness.later(minutes=31)
    for token in ("forged", "x" * 129, used, expiring):
        with pytest.raises(ResetTokenInvalid):
            await confirm_password_reset(harness.ports, token=token, new_password="other-pass-2")
    assert harness.hasher.hashed == hashed
