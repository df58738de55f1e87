"""Request-scoped dependencies: the app's components, the use cases' ports, the staff caller."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from catalog.entrypoints.http.components import CATALOG, CatalogComponents
from catalog.use_cases.ports import CatalogPorts
from emporium_kit.identity import Principal, require_permission

CATALOG_WRITE: Final = "catalog:write"
"""The permission every catalogue change needs (the users service grants it to staff
and admins)."""

Components = Annotated[CatalogComponents, Depends(CATALOG)]


# async: FastAPI runs plain-def dependencies in a worker thread (a costly hop).
async def use_case_ports(components: Components) -> CatalogPorts:
    return components.ports


Ports = Annotated[CatalogPorts, Depends(use_case_ports)]
CatalogWriter = Annotated[Principal, Depends(require_permission(CATALOG_WRITE))]
