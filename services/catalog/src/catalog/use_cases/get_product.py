from __future__ import annotations

from uuid import UUID

from catalog.domain.errors import ProductNotFound
from catalog.domain.money import DisplayPrice
from catalog.domain.products import Product
from catalog.use_cases.ports import CatalogPorts


async def get_product(
    ports: CatalogPorts, product_id: UUID, *, currency: str | None = None
) -> tuple[Product, DisplayPrice | None]:
    """A live product and, when ``currency`` is given, its price shown in that currency."""
    async with ports.uow(read_only=True) as uow:
        product = await uow.products.get(product_id)
    if product is None:
        raise ProductNotFound
    if currency is None:
        return product, None
    return product, await ports.display_prices.display_price(product.price, currency)
