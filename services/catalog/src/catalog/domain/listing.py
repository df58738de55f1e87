"""What a product listing asks for: text, filters, one sort, a page after a position."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple
from uuid import UUID

from catalog.domain.errors import InvalidPriceRange

MAX_QUERY_LENGTH: Final = 200
MAX_PAGE_SIZE: Final = 100
DEFAULT_PAGE_SIZE: Final = 20


class Sort(StrEnum):
    RELEVANCE = "relevance"
    NEWEST = "newest"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    NAME = "name"


PositionValue = datetime | int | str | float
"""The sort key of the last item of a page: created_at, price, name or relevance score."""


class ListedProduct(NamedTuple):
    """A product as a listing shows it: its public document, ready to be written as
    JSON, and the keys a cursor after it needs. A read model: a listing builds no
    :class:`~catalog.domain.products.Product` (docs/performance.md, session 8)."""

    document: Mapping[str, Any]
    id: UUID
    created_at: datetime
    price_amount: int
    name: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Position:
    """The keyset position after which the next page starts, for one sort."""

    sort: Sort
    value: PositionValue
    id: UUID


@dataclass(frozen=True, slots=True)
class ProductQuery:
    text: str | None = None
    category: str | None = None
    """A category id or slug; its whole subtree matches."""
    min_price: int | None = None
    max_price: int | None = None
    in_stock: bool = False
    attributes: tuple[tuple[str, str], ...] = ()
    """``attr.<name>=<value>`` pairs, all of which must match."""
    sort: Sort = Sort.NEWEST
    limit: int = DEFAULT_PAGE_SIZE
    after: Position | None = None


def effective_sort(requested: Sort | None, *, text: str | None) -> Sort:
    """``relevance`` when searching, else ``newest``; relevance without text has no
    score to order by, so it orders as ``newest``."""
    if requested is None:
        return Sort.RELEVANCE if text else Sort.NEWEST
    if requested is Sort.RELEVANCE and not text:
        return Sort.NEWEST
    return requested


def ensure_price_range(min_price: int | None, max_price: int | None) -> None:
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidPriceRange
