"""The role-change rules of the domain, decided on plain facts: no database, no fakes."""

from __future__ import annotations

from uuid import uuid4

import pytest

from users.domain.errors import LastAdminRemoval, UnknownRole
from users.domain.roles import RoleChange

KNOWN = {"customer", "staff", "admin"}


def test_a_role_change_keeps_the_customer_role_and_sorts_the_roles() -> None:
    user = uuid4()
    change = RoleChange.requested(user, ["staff", "admin", "staff"], known_roles=KNOWN)
    assert change == RoleChange(user, ("admin", "customer", "staff"))


def test_a_role_change_to_unknown_roles_is_refused_naming_each_of_them() -> None:
    with pytest.raises(UnknownRole, match=r"^Unknown roles: root, superuser\.$"):
        RoleChange.requested(uuid4(), ["superuser", "staff", "root"], known_roles=KNOWN)


def test_the_last_admin_cannot_lose_the_admin_role() -> None:
    last = uuid4()
    change = RoleChange.requested(last, ["staff"], known_roles=KNOWN)
    with pytest.raises(LastAdminRemoval):
        change.ensure_an_admin_remains({last})


def test_an_admin_may_lose_the_role_while_another_admin_holds_it() -> None:
    last, other = uuid4(), uuid4()
    RoleChange.requested(last, ["customer"], known_roles=KNOWN).ensure_an_admin_remains(
        {last, other}
    )


def test_the_last_admin_may_change_roles_that_keep_admin() -> None:
    last = uuid4()
    RoleChange.requested(last, ["admin"], known_roles=KNOWN).ensure_an_admin_remains({last})


def test_a_user_who_is_not_an_admin_may_drop_roles_whoever_the_admins_are() -> None:
    last, other = uuid4(), uuid4()
    RoleChange.requested(other, [], known_roles=KNOWN).ensure_an_admin_remains({last})


def test_with_no_admin_left_to_protect_a_demotion_is_not_refused() -> None:
    # Nobody holds the role (only possible before bootstrap): nothing to keep.
    RoleChange.requested(uuid4(), ["customer"], known_roles=KNOWN).ensure_an_admin_remains(set())
