"""The catalogue's two hottest reads outside FastAPI's routing: a product, the listing.

``GET /api/v1/products/{product_id}`` without a query is what every product page
asks, ``GET /api/v1/products`` what every storefront page of products asks.
FastAPI's exception middleware, router, parameter validation and dependency
solving were about a quarter of their CPU in the catalog (py-spy,
docs/performance.md sessions 8 and 9). :class:`CatalogueReads` sits just inside
the kit's middleware (request context, metrics, body guard) and answers those
requests itself with the routes' own code: the product read's use case and
document, and the listing's :func:`~catalog.entrypoints.http.routes.product_listing`
after the routes' own parameter model (:class:`ListingParameters`) accepted the
query. Everything else goes on to FastAPI unchanged: another method, a product
read with ``?currency=`` (other parameters the route ignores, and so does the
fast read), an id that is not a UUID, an absent or
deleted product, a query the model refuses, and any error, so every 400, 404,
422 and 503 stays exactly the route's own (the route does the work again: a 404
costs two reads, ADR 0021).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.entrypoints.http.components import CATALOG
from catalog.entrypoints.http.routes import product_listing
from catalog.entrypoints.http.schemas import (
    LISTING_PARAMETERS,
    ListingParameters,
    json_response,
    product_document,
)
from catalog.use_cases.get_product import get_product
from emporium_kit.tracing import name_server_span

LISTING = "/api/v1/products"
PREFIX = LISTING + "/"
TEMPLATE = PREFIX + "{product_id}"
_UUID_LENGTH = 36  # the canonical 8-4-4-4-12 form; any other spelling goes to FastAPI
_CURRENCY = "currency"  # the product read's parameter: a display price needs the route


@dataclass(frozen=True, slots=True)
class _Route:
    """What routing leaves in ``scope["route"]`` for the kit's metrics: the template."""

    path: str


_PRODUCT_ROUTE = _Route(TEMPLATE)
_LISTING_ROUTE = _Route(LISTING)


class CatalogueReads:
    """Inner middleware: answers a plain product read and a listing the routes' model
    accepts; passes every other request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if scope["path"] == LISTING:
            response = await self._listing(scope)
            route = _LISTING_ROUTE
        else:
            response = await self._product(scope)
            route = _PRODUCT_ROUTE
        if response is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        name_server_span("GET", route.path)
        await response(scope, receive, send)

    @staticmethod
    async def _product(scope: Scope) -> Response | None:
        product_id = _plain_product_read(scope)
        if product_id is None:
            return None
        try:
            product, _ = await get_product(CATALOG.get(scope["app"]).ports, product_id)
        except Exception:  # the route answers it, as it answers every error
            return None
        return json_response(product_document(product))

    @staticmethod
    async def _listing(scope: Scope) -> Response | None:
        query = QueryParams(scope["query_string"])
        try:
            parameters = ListingParameters.model_validate(
                {name: query[name] for name in LISTING_PARAMETERS if name in query}
            )
            return await product_listing(CATALOG.get(scope["app"]), parameters, query)
        except Exception:  # a refused query, a bad cursor, a failed read: the route's
            return None


def _plain_product_read(scope: Scope) -> UUID | None:
    """The product id of a GET of ``/api/v1/products/<canonical uuid>`` without
    ``currency``, the one parameter of the route (it ignores any other, as this does)."""
    path: str = scope["path"]
    if not path.startswith(PREFIX) or len(path) != len(PREFIX) + _UUID_LENGTH:
        return None  # (checked first: every other GET passes through here)
    raw = path[len(PREFIX) :]
    try:
        product_id = UUID(raw)
    except ValueError:
        return None
    if str(product_id) != raw:
        return None
    query_string = scope["query_string"]
    if query_string and _CURRENCY in QueryParams(query_string):
        return None
    return product_id
