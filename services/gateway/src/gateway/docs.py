"""``/openapi.json`` (the merged document) and ``/docs`` (Swagger UI, served locally).

The merged document is OpenAPI 3.1, which only Swagger UI 5 can read. Its
files come from the ``fastapi-offline`` package, whose data folder ``static``
carries a current Swagger UI 5 build (5.32.6 in 1.7.7), and the gateway serves
them under ``/docs/assets``: clients may have no CDN access, and the docs
page's CSP (the kit's ``DOCS_CSP``) allows scripts from ``'self'`` only.
``tests/e2e/test_docs_in_browser.py`` checks in chromium that the page renders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from gateway.openapi_merge import OpenApiCatalog

TITLE = "Emporium API"
DESCRIPTION = (
    "The public API of Emporium, through its gateway. Errors are RFC 9457 problem "
    "documents; every response carries `X-Request-ID`; rate limits are announced in "
    "`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`."
)
ASSETS_PATH = "/docs/assets"


class OwnRoutesSpec:
    """The OpenAPI of the gateway's own routes (health, metrics), made once, on first use.

    Those routes exist only once the app is built, after the catalogue that
    merges this document was made: :meth:`adopt` hands them over.
    """

    def __init__(self, *, title: str, version: str) -> None:
        self._title = title
        self._version = version
        self._routes: list[BaseRoute] = []
        self._spec: Mapping[str, Any] | None = None

    def adopt(self, routes: Iterable[BaseRoute]) -> None:
        self._routes = list(routes)
        self._spec = None

    def __call__(self) -> Mapping[str, Any]:
        if self._spec is None:
            self._spec = get_openapi(title=self._title, version=self._version, routes=self._routes)
        return self._spec


def docs_router(catalog: OpenApiCatalog, *, title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    async def openapi() -> Response:
        return Response(catalog.document(), media_type="application/json")

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            # No validator badge: it would load an image from elsewhere.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    return router


def docs_assets() -> Mount:
    directory = files("fastapi_offline") / "static"
    return Mount(ASSETS_PATH, app=StaticFiles(directory=str(directory)), name="docs-assets")
