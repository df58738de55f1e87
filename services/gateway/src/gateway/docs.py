"""``/openapi.json`` (the merged document) and ``/docs`` (Swagger UI, served locally).

Swagger UI's files come from the ``swagger-ui-bundle`` package and are served
by the gateway under ``/docs/assets``: clients may have no CDN access, and the
docs page's CSP (the kit's ``DOCS_CSP``) allows scripts from ``'self'`` only.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

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
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # No validator badge: it would load an image from elsewhere.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    return router


def docs_assets() -> Mount:
    return Mount(ASSETS_PATH, app=StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
