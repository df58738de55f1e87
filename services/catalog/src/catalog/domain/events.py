"""The events the catalogue publishes about its products and categories, as payloads.

Routing keys follow ``<service>.<fact>.v<version>``; the payloads are described in
``contracts/events/``. Consumers ignore fields they do not know, so fields may be
added here, never removed or changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from catalog.domain.categories import Category
from catalog.domain.products import Product

PRODUCT_CREATED: Final = "catalog.product_created.v1"
PRODUCT_UPDATED: Final = "catalog.product_updated.v1"
PRODUCT_DELETED: Final = "catalog.product_deleted.v1"
CATEGORY_CHANGED: Final = "catalog.category_changed.v1"

CategoryChange = Literal["created", "updated", "deleted"]


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def product_snapshot(product: Product) -> dict[str, Any]:
    """The product as the API shows it, with ``product_id``: what product events carry."""
    return {
        "product_id": str(product.id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": {"amount": product.price.amount, "currency": product.price.currency},
        "category_id": str(product.category_id) if product.category_id else None,
        "attributes": dict(product.attributes),
        "image_urls": list(product.image_urls),
        "stock": {
            "on_hand": product.stock.on_hand,
            "reserved": product.stock.reserved,
            "available": product.stock.available,
        },
        "created_at": rfc3339(product.created_at),
        "updated_at": rfc3339(product.updated_at),
    }


def product_updated(product: Product, changed: Iterable[str]) -> dict[str, Any]:
    return {**product_snapshot(product), "changed": sorted(changed)}


def product_deleted(product: Product) -> dict[str, Any]:
    return {
        "product_id": str(product.id),
        "sku": product.sku,
        "deleted_at": rfc3339(product.deleted_at or product.updated_at),
    }


def category_changed(category: Category, change: CategoryChange) -> dict[str, Any]:
    return {
        "category_id": str(category.id),
        "change": change,
        "name": category.name,
        "slug": category.slug,
        "parent_id": str(category.parent_id) if category.parent_id else None,
        "updated_at": rfc3339(category.updated_at),
    }
