"""Domain errors, each named for the rule it enforces and carrying a stable code.

The composition root maps each to its HTTP status (``catalog.main.DOMAIN_ERRORS``).
"""

from __future__ import annotations


class CatalogError(Exception):
    code = "catalog-error"


class CategoryNotFound(CatalogError):
    code = "category-not-found"

    def __init__(self) -> None:
        super().__init__("No such category.")


class ParentCategoryNotFound(CatalogError):
    """The body names a parent that does not exist: an invalid field (422), not an
    absent resource, since the category addressed by the request is not the parent."""

    code = "parent-category-not-found"

    def __init__(self) -> None:
        super().__init__("parent_id names no existing category.")


class SlugTaken(CatalogError):
    code = "slug-taken"

    def __init__(self, slug: str) -> None:
        super().__init__(f"Another category already has the slug {slug!r}.")


class CategoryCycle(CatalogError):
    code = "category-cycle"

    def __init__(self) -> None:
        super().__init__("A category cannot be moved under itself or one of its descendants.")


class CategoryNotEmpty(CatalogError):
    code = "category-not-empty"

    def __init__(self, *, children: bool, products: bool) -> None:
        held = " and ".join(
            what
            for what, present in (("sub-categories", children), ("products", products))
            if present
        )
        super().__init__(f"The category still holds {held}; move or delete them first.")


class ProductNotFound(CatalogError):
    code = "product-not-found"

    def __init__(self) -> None:
        super().__init__("No such product.")


class ProductCategoryNotFound(CatalogError):
    code = "product-category-not-found"

    def __init__(self) -> None:
        super().__init__("category_id names no existing category.")


class SkuTaken(CatalogError):
    code = "sku-taken"

    def __init__(self, sku: str) -> None:
        super().__init__(f"Another product already has the SKU {sku!r}.")


class StockBelowReserved(CatalogError):
    code = "stock-below-reserved"

    def __init__(self, *, quantity: int, reserved: int) -> None:
        super().__init__(
            f"{reserved} units are reserved by orders; stock on hand cannot be set to "
            f"{quantity}, below that."
        )


class InvalidPriceRange(CatalogError):
    code = "invalid-price-range"

    def __init__(self) -> None:
        super().__init__("min_price is greater than max_price.")
