"""Request-scoped dependencies: the app's components and the admin caller."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from emporium_kit.identity import Principal, require_permission
from ops.entrypoints.http.components import OPS, OpsComponents

OPS_ADMIN: Final = "ops:admin"
"""The permission every ops route needs (the users service grants it to admins)."""

Components = Annotated[OpsComponents, Depends(OPS)]
OpsAdmin = Annotated[Principal, Depends(require_permission(OPS_ADMIN))]
