from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from catalog.domain import events
from catalog.domain.categories import Category, path_under
from catalog.domain.errors import ParentCategoryNotFound
from catalog.use_cases.ports import CatalogPorts


async def create_category(
    ports: CatalogPorts, *, name: str, slug: str, parent_id: UUID | None
) -> Category:
    """A new category under ``parent_id`` (a root without one); its slug is unique."""
    async with ports.uow() as uow:
        await uow.categories.lock_tree()
        parent = None
        if parent_id is not None:
            parent = await uow.categories.get(parent_id)
            if parent is None:
                raise ParentCategoryNotFound
        category_id = uuid.uuid4()
        now = datetime.now(UTC)
        category = await uow.categories.add(
            Category(
                id=category_id,
                name=name,
                slug=slug,
                parent_id=parent_id,
                path=path_under(parent.path if parent else None, category_id),
                created_at=now,
                updated_at=now,
            )
        )
        await uow.add_event(events.CATEGORY_CHANGED, events.category_changed(category, "created"))
        await uow.commit()
    return category
