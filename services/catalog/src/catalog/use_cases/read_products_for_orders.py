from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from catalog.domain.products import Product
from catalog.use_cases.ports import CatalogPorts


async def read_products_for_orders(ports: CatalogPorts, ids: Sequence[UUID]) -> list[Product]:
    """The current state of each product an order names, deleted ones included (the
    caller must learn that they cannot be ordered, not find them missing)."""
    async with ports.uow(read_only=True) as uow:
        return await uow.products.batch(list(dict.fromkeys(ids)))
