"""The catalogue's test doubles: the testkit's signing key with a staff token, its JWKS stand-in."""

from __future__ import annotations

from emporium_testkit.identity import JwksStandIn
from emporium_testkit.identity import SigningKey as _SigningKey

__all__ = ["CATALOG_WRITE", "JwksStandIn", "SigningKey"]

CATALOG_WRITE = "catalog:write"


class SigningKey(_SigningKey):
    def staff_headers(self) -> dict[str, str]:
        return self.headers(permissions=[CATALOG_WRITE], roles=["customer", "staff"])
