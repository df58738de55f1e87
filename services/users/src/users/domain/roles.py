"""Roles and permissions.

The grants themselves are data (tables seeded by migration); routes check
permissions, never role names. These constants name what the code checks.
"""

from __future__ import annotations

from typing import Final

CUSTOMER: Final = "customer"
STAFF: Final = "staff"
ADMIN: Final = "admin"

USERS_ADMIN: Final = "users:admin"
CATALOG_WRITE: Final = "catalog:write"
ORDERS_MANAGE: Final = "orders:manage"


def with_base_role(roles: list[str]) -> list[str]:
    """Every registered user keeps the customer role, whatever else is granted."""
    return sorted({CUSTOMER, *roles})
