"""``/openapi.json`` (the merged document) and ``/docs`` (Swagger UI, served locally).

The merged document is OpenAPI 3.1, which only Swagger UI 5 can read. Its
files come from the ``fastapi-offline`` package, whose data folder ``static``
carries a current Swagger UI 5 build (5.32.6 in 1.7.7), and the gateway serves
them under ``/docs/assets``: clients may have no CDN access, and the docs
page's CSP (the kit's ``DOCS_CSP``) allows scripts from ``'self'`` only.
``tests/e2e/test_docs_in_browser.py`` checks in chromium that the page renders.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gateway.openapi_merge import OpenApiCatalog

ASSETS_PATH = "/docs/assets"


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
