from __future__ import annotations

from uuid import UUID

from catalog.domain import events
from catalog.domain.errors import ProductNotFound
from catalog.use_cases.ports import CatalogPorts


async def delete_product(ports: CatalogPorts, product_id: UUID) -> None:
    """Soft-delete a live product: gone from listings and reads, no longer orderable;
    its row stays for the orders that reference it."""
    async with ports.uow() as uow:
        deleted = await uow.products.soft_delete(product_id)
        if deleted is None:
            raise ProductNotFound
        await uow.add_event(events.PRODUCT_DELETED, events.product_deleted(deleted))
        await uow.commit()
