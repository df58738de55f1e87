from __future__ import annotations

from catalog.domain.categories import CategoryNode, build_tree
from catalog.use_cases.ports import CatalogPorts


async def list_categories(ports: CatalogPorts) -> list[CategoryNode]:
    """The whole category tree, read in one query."""
    async with ports.uow(read_only=True) as uow:
        return build_tree(await uow.categories.all())
