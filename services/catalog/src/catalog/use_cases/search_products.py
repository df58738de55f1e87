from __future__ import annotations

from catalog.domain.listing import ListedProduct, ProductQuery, ensure_price_range
from catalog.use_cases.ports import CatalogPorts


async def search_products(ports: CatalogPorts, query: ProductQuery) -> list[ListedProduct]:
    """One page of live products matching ``query``, each with its relevance score
    when the query has text. Ask for one more than a page to learn whether more follow."""
    ensure_price_range(query.min_price, query.max_price)
    async with ports.uow(read_only=True) as uow:
        return await uow.products.page(query)
