"""Categories: a tree of any depth, kept as an adjacency list with a materialised path.

A category's ``path`` is the ids from the root down to it, each as 32 hex
digits between slashes (``/<root>/<child>/``): its subtree is every category
whose path starts with its own, and the tree sorted by path lists every parent
before its children.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from catalog.domain.errors import CategoryCycle, CategoryNotEmpty


@dataclass(frozen=True, slots=True)
class Category:
    id: UUID
    name: str
    slug: str
    parent_id: UUID | None
    path: str
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class CategoryNode:
    category: Category
    children: list[CategoryNode] = field(default_factory=list)


def path_under(parent_path: str | None, category_id: UUID) -> str:
    """The path of ``category_id`` placed under the category with ``parent_path``
    (a root without one)."""
    return f"{parent_path or '/'}{category_id.hex}/"


def is_within(path: str, ancestor_path: str) -> bool:
    """Whether the category at ``path`` is the one at ``ancestor_path`` or below it."""
    return path.startswith(ancestor_path)


def ensure_can_move(category: Category, new_parent: Category | None) -> None:
    """A category goes under any category but itself and its own descendants."""
    if new_parent is not None and is_within(new_parent.path, category.path):
        raise CategoryCycle


def ensure_can_delete(*, has_children: bool, has_products: bool) -> None:
    """A category that holds sub-categories or (live) products stays."""
    if has_children or has_products:
        raise CategoryNotEmpty(children=has_children, products=has_products)


def build_tree(categories: Iterable[Category]) -> list[CategoryNode]:
    """The roots, each with its children (sorted by name, then slug), from a flat list."""
    nodes = {category.id: CategoryNode(category) for category in categories}
    roots: list[CategoryNode] = []
    for node in nodes.values():
        parent = nodes.get(node.category.parent_id) if node.category.parent_id else None
        (parent.children if parent is not None else roots).append(node)

    def order(level: list[CategoryNode]) -> None:
        level.sort(key=lambda n: (n.category.name, n.category.slug))
        for child in level:
            order(child.children)

    order(roots)
    return roots
