from __future__ import annotations

from enum import Enum
from typing import Final
from uuid import UUID

from catalog.domain import events
from catalog.domain.categories import Category, ensure_can_move, path_under
from catalog.domain.errors import CategoryNotFound, ParentCategoryNotFound
from catalog.use_cases.ports import CatalogPorts


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""``parent_id=KEEP``: the category stays where it is (``None`` makes it a root)."""


async def update_category(
    ports: CatalogPorts,
    category_id: UUID,
    *,
    name: str | None = None,
    slug: str | None = None,
    parent_id: UUID | _Keep | None = KEEP,
) -> Category:
    """Rename, re-slug or move a category; a move takes its whole subtree along and
    never goes under the category itself or one of its descendants."""
    async with ports.uow() as uow:
        await uow.categories.lock_tree()
        category = await uow.categories.get(category_id)
        if category is None:
            raise CategoryNotFound
        new_parent_id = category.parent_id
        path = category.path
        if parent_id is not KEEP:
            new_parent = None
            if parent_id is not None:
                new_parent = await uow.categories.get(parent_id)
                if new_parent is None:
                    raise ParentCategoryNotFound
            ensure_can_move(category, new_parent)
            new_parent_id = parent_id
            path = path_under(new_parent.path if new_parent else None, category.id)
        updated = await uow.categories.update(
            category_id,
            name=category.name if name is None else name,
            slug=category.slug if slug is None else slug,
            parent_id=new_parent_id,
            path=path,
        )
        await uow.add_event(events.CATEGORY_CHANGED, events.category_changed(updated, "updated"))
        await uow.commit()
    return updated
