"""Products, their stock and the rules that change them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from catalog.domain.errors import StockBelowReserved
from catalog.domain.money import Money

AttributeValue = str | int | float | bool

MAX_ATTRIBUTES: Final = 50
MAX_ATTRIBUTE_NAME_LENGTH: Final = 64
MAX_ATTRIBUTE_TEXT_LENGTH: Final = 500
MAX_IMAGE_URLS: Final = 10
MAX_STOCK: Final = 2**31 - 1
"""The stock columns are PostgreSQL integers."""


@dataclass(frozen=True, slots=True)
class StockLevel:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class Product:
    id: UUID
    sku: str
    name: str
    description: str
    price: Money
    category_id: UUID | None
    attributes: dict[str, AttributeValue]
    image_urls: tuple[str, ...]
    stock: StockLevel
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def can_be_ordered(self) -> bool:
        """A deleted product cannot be ordered (orders keep their snapshot)."""
        return not self.is_deleted


@dataclass(frozen=True, slots=True)
class NewProduct:
    """A product as a client describes it, before it is stored."""

    sku: str
    name: str
    description: str
    price: Money
    category_id: UUID
    attributes: dict[str, AttributeValue]
    image_urls: tuple[str, ...]
    stock: int


PRODUCT_FIELDS_CHANGEABLE: Final = frozenset(
    {"name", "description", "price", "category_id", "attributes", "image_urls"}
)
"""What a product update may change: everything but its SKU and its stock (which has
a route of its own)."""


def ensure_stock_settable(quantity: int, stock: StockLevel) -> None:
    """Stock on hand never goes below what orders have reserved."""
    if quantity < stock.reserved:
        raise StockBelowReserved(quantity=quantity, reserved=stock.reserved)
