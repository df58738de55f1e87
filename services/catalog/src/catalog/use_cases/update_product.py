from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from catalog.domain import events
from catalog.domain.errors import ProductNotFound
from catalog.domain.products import PRODUCT_FIELDS_CHANGEABLE, Product
from catalog.use_cases.ports import CatalogPorts


async def update_product(
    ports: CatalogPorts, product_id: UUID, changes: Mapping[str, Any]
) -> Product:
    """Change any of a live product's fields but its SKU and stock."""
    unknown = set(changes) - PRODUCT_FIELDS_CHANGEABLE
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    async with ports.uow() as uow:
        if changes:
            updated = await uow.products.update(product_id, changes)
        else:
            updated = await uow.products.get(product_id)
        if updated is None:
            raise ProductNotFound
        if changes:
            await uow.add_event(events.PRODUCT_UPDATED, events.product_updated(updated, changes))
            await uow.commit()
    return updated
