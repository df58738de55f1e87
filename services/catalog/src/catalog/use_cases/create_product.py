from __future__ import annotations

import uuid

from catalog.domain import events
from catalog.domain.products import NewProduct, Product
from catalog.use_cases.ports import CatalogPorts


async def create_product(ports: CatalogPorts, product: NewProduct) -> Product:
    """Store a new product with its initial stock on hand, and say so in an event."""
    async with ports.uow() as uow:
        created = await uow.products.add(product, product_id=uuid.uuid4())
        await uow.add_event(events.PRODUCT_CREATED, events.product_snapshot(created))
        await uow.commit()
    return created
