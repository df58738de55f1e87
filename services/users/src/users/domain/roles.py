"""Roles and permissions.

The grants themselves are data (tables seeded by migration); routes check
permissions, never role names. These constants name what the code checks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from users.domain.errors import LastAdminRemoval, UnknownRole

CUSTOMER: Final = "customer"
STAFF: Final = "staff"
ADMIN: Final = "admin"

USERS_ADMIN: Final = "users:admin"
CATALOG_WRITE: Final = "catalog:write"
ORDERS_MANAGE: Final = "orders:manage"
OPS_ADMIN: Final = "ops:admin"


def with_base_role(roles: Iterable[str]) -> list[str]:
    """Every registered user keeps the customer role, whatever else is granted."""
    return sorted({CUSTOMER, *roles})


@dataclass(frozen=True, slots=True)
class RoleChange:
    """Replacing one user's roles, decided here on the facts its use case loads.

    The use case loads the known roles, then locks the admins
    (``UserRepository.lock_role_holders``) and asks this change whether it may
    go ahead; it saves ``roles`` only if no rule refused it.
    """

    user_id: UUID
    roles: tuple[str, ...]
    """What the user will hold: the roles asked for and the customer role, sorted."""

    @classmethod
    def requested(
        cls, user_id: UUID, roles: Iterable[str], *, known_roles: Collection[str]
    ) -> RoleChange:
        """The change asked for; :class:`UnknownRole` names any role that does not exist.

        Roles are data (seeded by migration), so ``known_roles`` is what the
        database holds.
        """
        wanted = with_base_role(roles)
        unknown = set(wanted).difference(known_roles)
        if unknown:
            raise UnknownRole(sorted(unknown))
        return cls(user_id, tuple(wanted))

    def ensure_an_admin_remains(self, admins: Collection[UUID]) -> None:
        """There is always an admin: the last one cannot lose the role (:class:`LastAdminRemoval`).

        ``admins`` must be read under the lock that the change holds until it
        commits, or two concurrent demotions could each see the other admin and
        both go ahead.
        """
        if self.user_id in admins and ADMIN not in self.roles and len(admins) <= 1:
            raise LastAdminRemoval
