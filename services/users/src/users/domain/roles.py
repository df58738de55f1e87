"""Roles and permissions.

The grants themselves are data (tables seeded by migration); routes check
permissions, never role names. These constants name what the code checks.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final
from uuid import UUID

from users.domain.errors import LastAdminRemoval

CUSTOMER: Final = "customer"
STAFF: Final = "staff"
ADMIN: Final = "admin"

USERS_ADMIN: Final = "users:admin"
CATALOG_WRITE: Final = "catalog:write"
ORDERS_MANAGE: Final = "orders:manage"


def with_base_role(roles: list[str]) -> list[str]:
    """Every registered user keeps the customer role, whatever else is granted."""
    return sorted({CUSTOMER, *roles})


def ensure_an_admin_remains(
    admins: Collection[UUID], user_id: UUID, new_roles: Collection[str]
) -> None:
    """There is always an admin: the last one cannot lose the role.

    ``admins`` must be read under the lock that the role change holds until it
    commits (``UserRepository.lock_role_holders``), or two concurrent demotions
    could each see the other admin and both go ahead.
    """
    if user_id in admins and ADMIN not in new_roles and len(admins) <= 1:
        raise LastAdminRemoval
