"""The ports the use cases need; adapters implement them, tests fake them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from catalog.domain.categories import Category
from catalog.domain.listing import ListedProduct, ProductQuery
from catalog.domain.money import DisplayPrice, Money
from catalog.domain.products import NewProduct, Product


class CategoryRepository(Protocol):
    async def all(self) -> list[Category]:
        """Every category, in one query, ordered by path (parents before children)."""

    async def get(self, category_id: UUID, *, for_update: bool = False) -> Category | None:
        """``for_update`` locks its row until the unit of work ends."""

    async def add(self, category: Category) -> Category:
        """Store ``category``; :class:`~catalog.domain.errors.SlugTaken` if its slug is."""

    async def update(
        self, category_id: UUID, *, name: str, slug: str, parent_id: UUID | None, path: str
    ) -> Category:
        """Store the changes; a new ``path`` moves the whole subtree with it.
        :class:`~catalog.domain.errors.SlugTaken` if the new slug is taken."""

    async def delete(self, category_id: UUID) -> None: ...

    async def has_children(self, category_id: UUID) -> bool: ...

    async def lock_tree(self) -> None:
        """Serialise changes to the tree's shape until this unit of work ends, so two
        concurrent moves cannot build a cycle between them."""


class ProductRepository(Protocol):
    async def add(self, product: NewProduct, *, product_id: UUID) -> Product:
        """Store a new product; :class:`~catalog.domain.errors.SkuTaken` if a live
        product has its SKU, :class:`~catalog.domain.errors.ProductCategoryNotFound`
        if its category does not exist."""

    async def get(self, product_id: UUID) -> Product | None:
        """A live product, or None when it is absent or deleted."""

    async def update(self, product_id: UUID, changes: Mapping[str, Any]) -> Product | None:
        """Change a live product's fields (``PRODUCT_FIELDS_CHANGEABLE``); None if it is
        absent or deleted."""

    async def soft_delete(self, product_id: UUID) -> Product | None:
        """Mark a live product deleted; None if it is absent or deleted already."""

    async def set_on_hand(self, product_id: UUID, quantity: int) -> Product | None:
        """Set stock on hand, only if it stays at or above what is reserved (one
        conditional UPDATE); None when nothing changed (absent, deleted, or below)."""

    async def page(self, query: ProductQuery) -> list[ListedProduct]:
        """Up to ``query.limit`` live products matching the query in its sort order, after
        its position, each with its relevance score when the query has text."""

    async def batch(self, ids: Sequence[UUID]) -> list[Product]:
        """The products with these ids, deleted ones included."""

    async def has_live_products_in(self, category_id: UUID) -> bool: ...


class UnitOfWork(Protocol):
    categories: CategoryRepository
    products: ProductRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        """Record an event in the outbox; it is published if and only if this commits."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A unit of work; ``read_only`` ones skip the transaction (one round trip a query)."""


class DisplayPrices(Protocol):
    """Prices shown in another currency at the current exchange rate.

    The exchange-rate part of the service implements it (``use_cases/display_price.py``
    with the rates adapter); the composition root wires it in.
    """

    async def display_price(self, price: Money, currency: str) -> DisplayPrice:
        """``price`` in ``currency`` (an ISO 4217 code already validated), with the rate
        used and its date; never raises for a rate that is unknown or a provider that
        is down: the result's ``error`` says why there is no converted price."""


@dataclass(frozen=True, slots=True)
class CatalogPorts:
    """What every use case is given."""

    uow: UnitOfWorkFactory
    display_prices: DisplayPrices
