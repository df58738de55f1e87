from __future__ import annotations

from uuid import UUID

from catalog.domain import events
from catalog.domain.errors import ProductNotFound
from catalog.domain.products import Product, ensure_stock_settable
from catalog.use_cases.ports import CatalogPorts


async def set_stock(ports: CatalogPorts, product_id: UUID, quantity: int) -> Product:
    """Set stock on hand; never below what orders have reserved.

    One conditional UPDATE (``reserved <= quantity``) decides, so a reservation
    committed meanwhile cannot be undercut; when it changes nothing the product is
    read to say why (absent, or reserved above ``quantity``).
    """
    async with ports.uow() as uow:
        updated = await uow.products.set_on_hand(product_id, quantity)
        if updated is None:
            current = await uow.products.get(product_id)
            if current is None:
                raise ProductNotFound
            ensure_stock_settable(quantity, current.stock)
            raise RuntimeError(f"stock of {product_id} was settable but did not change")
        await uow.add_event(events.PRODUCT_UPDATED, events.product_updated(updated, ["stock"]))
        await uow.commit()
    return updated
