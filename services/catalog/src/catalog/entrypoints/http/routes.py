"""The catalogue routes of the public contract, and the internal batch read for orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import QueryParams

from catalog.domain.listing import (
    ListedProduct,
    Position,
    PositionValue,
    ProductQuery,
    Sort,
    effective_sort,
)
from catalog.domain.products import (
    MAX_ATTRIBUTE_NAME_LENGTH,
    MAX_ATTRIBUTE_TEXT_LENGTH,
    NewProduct,
)
from catalog.entrypoints.http.components import CatalogComponents
from catalog.entrypoints.http.dependencies import CATALOG_WRITE, CatalogWriter, Components, Ports
from catalog.entrypoints.http.schemas import (
    BatchProduct,
    BatchRequest,
    BatchResponse,
    CategoryCreate,
    CategoryOut,
    CategoryTreeOut,
    CategoryUpdate,
    CurrencyCode,
    ListingParameters,
    PricedProductOut,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
    StockUpdate,
    json_response,
    priced_product_document,
    product_document,
)
from catalog.use_cases.create_category import create_category as create_category_use_case
from catalog.use_cases.create_product import create_product as create_product_use_case
from catalog.use_cases.delete_category import delete_category as delete_category_use_case
from catalog.use_cases.delete_product import delete_product as delete_product_use_case
from catalog.use_cases.get_product import get_product as get_product_use_case
from catalog.use_cases.list_categories import list_categories as list_categories_use_case
from catalog.use_cases.read_products_for_orders import read_products_for_orders
from catalog.use_cases.search_products import search_products
from catalog.use_cases.set_stock import set_stock as set_stock_use_case
from catalog.use_cases.update_category import KEEP
from catalog.use_cases.update_category import update_category as update_category_use_case
from catalog.use_cases.update_product import update_product as update_product_use_case
from emporium_kit.pagination import CursorCodec, InvalidCursor

# The route functions are named for the OpenAPI operation ids FastAPI derives from them;
# a use case of the same name is imported as ..._use_case.
categories = APIRouter(prefix="/api/v1/categories", tags=["categories"])
products = APIRouter(prefix="/api/v1/products", tags=["products"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"])

ATTRIBUTE_PREFIX: Final = "attr."
MAX_ATTRIBUTE_FILTERS: Final = 20

_WRITE: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or expired token"},
    403: {"description": f"Needs {CATALOG_WRITE}"},
}
_404: dict[int | str, dict[str, Any]] = {404: {"description": "No such product (or deleted)"}}


# --- categories ---


@categories.get("", summary="The category tree")
async def list_categories(ports: Ports) -> list[CategoryTreeOut]:
    return [CategoryTreeOut.of(node) for node in await list_categories_use_case(ports)]


@categories.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a category",
    responses={
        **_WRITE,
        409: {"description": "The slug is taken"},
        422: {"description": "Invalid field, or parent_id names no category"},
    },
)
async def create_category(body: CategoryCreate, ports: Ports, _staff: CatalogWriter) -> CategoryOut:
    category = await create_category_use_case(
        ports, name=body.name, slug=body.slug, parent_id=body.parent_id
    )
    return CategoryOut.of(category)


@categories.patch(
    "/{category_id}",
    summary="Rename, re-slug or move a category (with its subtree)",
    responses={
        **_WRITE,
        404: {"description": "No such category"},
        409: {"description": "The slug is taken, or the move is under itself or a descendant"},
        422: {"description": "Invalid field, or parent_id names no category"},
    },
)
async def update_category(
    category_id: UUID, body: CategoryUpdate, ports: Ports, _staff: CatalogWriter
) -> CategoryOut:
    category = await update_category_use_case(
        ports,
        category_id,
        name=body.name,
        slug=body.slug,
        parent_id=body.parent_id if "parent_id" in body.model_fields_set else KEEP,
    )
    return CategoryOut.of(category)


@categories.delete(
    "/{category_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an empty category",
    responses={
        **_WRITE,
        404: {"description": "No such category"},
        409: {"description": "It still holds sub-categories or products"},
    },
)
async def delete_category(category_id: UUID, ports: Ports, _staff: CatalogWriter) -> Response:
    await delete_category_use_case(ports, category_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- products ---


def _attribute_filters(query: QueryParams) -> tuple[tuple[str, str], ...]:
    """The ``attr.<name>=<value>`` parameters, bounded like the attributes themselves."""
    filters: list[tuple[str, str]] = []
    errors: list[dict[str, Any]] = []
    for key, value in query.multi_items():
        if not key.startswith(ATTRIBUTE_PREFIX):
            continue
        name = key[len(ATTRIBUTE_PREFIX) :]
        loc = ["query", key]
        if not 1 <= len(name) <= MAX_ATTRIBUTE_NAME_LENGTH or not name.isprintable():
            errors.append({"loc": loc, "msg": "invalid attribute name", "type": "value_error"})
        elif len(value) > MAX_ATTRIBUTE_TEXT_LENGTH or not value.isprintable():
            errors.append({"loc": loc, "msg": "invalid attribute value", "type": "value_error"})
        else:
            filters.append((name, value))
    if len(filters) > MAX_ATTRIBUTE_FILTERS:
        errors.append(
            {
                "loc": ["query", "attr"],
                "msg": f"at most {MAX_ATTRIBUTE_FILTERS} attribute filters",
                "type": "value_error",
            }
        )
    if errors:
        raise RequestValidationError(errors)
    return tuple(filters)


def _position(codec: CursorCodec, cursor: str, sort: Sort) -> Position:
    decoded = codec.decode(cursor)
    try:
        if decoded["s"] != sort.value:
            raise InvalidCursor
        raw, product_id = decoded["v"], UUID(decoded["i"])
        value: PositionValue
        if sort is Sort.NEWEST:
            value = datetime.fromisoformat(raw)
        elif sort in (Sort.PRICE_ASC, Sort.PRICE_DESC):
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise InvalidCursor
            value = raw
        elif sort is Sort.NAME:
            if not isinstance(raw, str):
                raise InvalidCursor
            value = raw
        else:
            if not isinstance(raw, int | float) or isinstance(raw, bool):
                raise InvalidCursor
            value = float(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidCursor from exc
    return Position(sort=sort, value=value, id=product_id)


def _cursor_value(sort: Sort, listed: ListedProduct) -> object:
    if sort is Sort.NEWEST:
        return listed.created_at.isoformat()
    if sort in (Sort.PRICE_ASC, Sort.PRICE_DESC):
        return listed.price_amount
    if sort is Sort.NAME:
        return listed.name
    return listed.score


@products.get(
    "",
    summary="Search and filter products",
    response_model=ProductPage,
    description=(
        "All parameters are optional and combine. `q` searches names and descriptions "
        "(full text, ranked, tolerant of small typos in names). `category` is an id or "
        "a slug and includes its sub-categories. `attr.<name>=<value>` (repeatable, at "
        f"most {MAX_ATTRIBUTE_FILTERS}) matches an attribute exactly; a value that reads "
        "as a number or `true`/`false` also matches that JSON type. `sort` is "
        "`relevance` by default with `q` (it orders as `newest` without `q`), else "
        "`newest`. Walking `next_cursor` returns every match exactly once, even while "
        "products are added; a cursor belongs to its sort."
    ),
    responses={
        400: {"description": "Bad or tampered cursor"},
        422: {"description": "Invalid parameter, or min_price greater than max_price"},
    },
)
async def list_products(
    request: Request, components: Components, parameters: Annotated[ListingParameters, Query()]
) -> Response:
    return await product_listing(components, parameters, request.query_params)


async def product_listing(
    components: CatalogComponents, parameters: ListingParameters, query: QueryParams
) -> Response:
    """The listing's page for ``parameters`` and the ``attr.<name>`` filters of
    ``query``: the route's answer, and its fast read's (``fast_reads``). Raises
    what the route answers as a problem (422, 400)."""
    text = parameters.q.strip() if parameters.q is not None else None
    chosen = effective_sort(parameters.sort, text=text or None)
    codec = components.product_cursors
    cursor = parameters.cursor
    found = await search_products(
        components.ports,
        ProductQuery(
            text=text or None,
            category=parameters.category,
            min_price=parameters.min_price,
            max_price=parameters.max_price,
            in_stock=bool(parameters.in_stock),
            attributes=_attribute_filters(query),
            sort=chosen,
            limit=parameters.limit + 1,
            after=_position(codec, cursor, chosen) if cursor is not None else None,
        ),
    )
    page, more = found[: parameters.limit], len(found) > parameters.limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = codec.encode(
            {"s": chosen.value, "v": _cursor_value(chosen, last), "i": str(last.id)}
        )
    items = [listed.document for listed in page]
    return json_response({"items": items, "next_cursor": next_cursor})


@products.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a product",
    response_model=ProductOut,
    responses={
        **_WRITE,
        409: {"description": "The SKU is taken by a live product"},
        422: {"description": "Invalid field, or category_id names no category"},
    },
)
async def create_product(body: ProductCreate, ports: Ports, _staff: CatalogWriter) -> Response:
    product = await create_product_use_case(
        ports,
        NewProduct(
            sku=body.sku,
            name=body.name,
            description=body.description,
            price=body.price.to_money(),
            category_id=body.category_id,
            attributes=dict(body.attributes),
            image_urls=tuple(body.image_urls),
            stock=body.stock,
        ),
    )
    return json_response(product_document(product), status.HTTP_201_CREATED)


@products.get(
    "/{product_id}",
    summary="A product",
    description=(
        "With `?currency=`, the price is also shown in that currency at the current "
        "exchange rate (`display_price`, `fx_rate`, `fx_as_of`); when no rate is known "
        "`display_price` is null and `fx_error` says why."
    ),
    response_model=PricedProductOut | ProductOut,
    responses=_404,
)
async def get_product(
    product_id: UUID,
    components: Components,
    currency: Annotated[
        CurrencyCode | None, Query(description="ISO 4217 code to show the price in.")
    ] = None,
) -> Response:
    # The components directly, not Ports: one dependency fewer to solve on a hot read.
    product, display = await get_product_use_case(components.ports, product_id, currency=currency)
    if display is None:
        return json_response(product_document(product))
    return json_response(priced_product_document(product, display))


@products.patch(
    "/{product_id}",
    summary="Change a product (any field but sku and stock)",
    response_model=ProductOut,
    responses={
        **_WRITE,
        **_404,
        422: {"description": "Invalid or unknown field, or category_id names no category"},
    },
)
async def update_product(
    product_id: UUID, body: ProductUpdate, ports: Ports, _staff: CatalogWriter
) -> Response:
    product = await update_product_use_case(ports, product_id, body.changes())
    return json_response(product_document(product))


@products.delete(
    "/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a product (it leaves the listings and can no longer be ordered)",
    responses={**_WRITE, **_404},
)
async def delete_product(product_id: UUID, ports: Ports, _staff: CatalogWriter) -> Response:
    await delete_product_use_case(ports, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@products.put(
    "/{product_id}/stock",
    summary="Set stock on hand",
    response_model=ProductOut,
    responses={**_WRITE, **_404, 409: {"description": "Below what orders have reserved"}},
)
async def set_stock(
    product_id: UUID, body: StockUpdate, ports: Ports, _staff: CatalogWriter
) -> Response:
    product = await set_stock_use_case(ports, product_id, body.quantity)
    return json_response(product_document(product))


# --- internal (the orders service; the gateway does not route it) ---


@internal.post(
    "/products/batch",
    summary="Current name, SKU, price and availability of products, for placing an order",
    description=(
        "For the orders service on the internal network; the gateway does not route "
        "it. Deleted products are reported (`orderable: false`), and ids of no "
        "product are listed in `missing`."
    ),
)
async def read_products_batch(body: BatchRequest, ports: Ports) -> BatchResponse:
    found = {product.id: product for product in await read_products_for_orders(ports, body.ids)}
    asked = list(dict.fromkeys(body.ids))
    return BatchResponse(
        items=[BatchProduct.of(found[pid]) for pid in asked if pid in found],
        missing=[pid for pid in asked if pid not in found],
    )
