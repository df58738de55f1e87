"""The product page's read outside FastAPI's routing: the catalogue's hottest request.

``GET /api/v1/products/{product_id}`` without a query is what every product page
asks. FastAPI's exception middleware, router, parameter validation and
dependency solving were about a quarter of its CPU in the catalog (py-spy,
docs/performance.md session 8). :class:`ProductPageReads` sits just inside the
kit's middleware (request context, metrics, body guard) and answers that request
itself with the route's own use case and document. Everything else goes on to
FastAPI unchanged: another method, any query (``?currency=``), an id that is not
a UUID, an absent or deleted product, and any error, so every 404, 422 and 503
stays exactly the route's own (the route reads again; a 404 costs two reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.entrypoints.http.components import CATALOG
from catalog.entrypoints.http.schemas import json_response, product_document
from catalog.use_cases.get_product import get_product
from emporium_kit.tracing import name_server_span

PREFIX = "/api/v1/products/"
TEMPLATE = PREFIX + "{product_id}"
_UUID_LENGTH = 36  # the canonical 8-4-4-4-12 form; any other spelling goes to FastAPI


@dataclass(frozen=True, slots=True)
class _Route:
    """What routing leaves in ``scope["route"]`` for the kit's metrics: the template."""

    path: str


_ROUTE = _Route(TEMPLATE)


class ProductPageReads:
    """Inner middleware: answers a plain product read; passes every other request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        product_id = _plain_product_read(scope)
        if product_id is None:
            await self.app(scope, receive, send)
            return
        try:
            product, _ = await get_product(CATALOG.get(scope["app"]).ports, product_id)
        except Exception:  # the route answers it, as it answers every error
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE
        name_server_span("GET", TEMPLATE)
        await json_response(product_document(product))(scope, receive, send)


def _plain_product_read(scope: Scope) -> UUID | None:
    """The product id of ``GET /api/v1/products/<canonical uuid>`` with no query string."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX) or len(path) != len(PREFIX) + _UUID_LENGTH:
        return None
    raw = path[len(PREFIX) :]
    try:
        product_id = UUID(raw)
    except ValueError:
        return None
    return product_id if str(product_id) == raw else None
