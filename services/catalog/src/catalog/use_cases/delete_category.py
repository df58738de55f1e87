from __future__ import annotations

from uuid import UUID

from catalog.domain import events
from catalog.domain.categories import ensure_can_delete
from catalog.domain.errors import CategoryNotFound
from catalog.use_cases.ports import CatalogPorts


async def delete_category(ports: CatalogPorts, category_id: UUID) -> None:
    """Delete an empty category: one with sub-categories or live products stays (409).

    The tree lock keeps a sub-category from being added meanwhile. The category's row
    is locked before the products are counted: a product being added to it holds a
    key-share lock on that row (its foreign key), so the count waits for it and sees
    it, and one added later waits for the delete and then fails its foreign key.
    """
    async with ports.uow() as uow:
        await uow.categories.lock_tree()
        category = await uow.categories.get(category_id, for_update=True)
        if category is None:
            raise CategoryNotFound
        ensure_can_delete(
            has_children=await uow.categories.has_children(category_id),
            has_products=await uow.products.has_live_products_in(category_id),
        )
        await uow.categories.delete(category_id)
        await uow.add_event(events.CATEGORY_CHANGED, events.category_changed(category, "deleted"))
        await uow.commit()
