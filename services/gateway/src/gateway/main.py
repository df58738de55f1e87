"""The composition root: builds the gateway from its settings. No I/O at import.

Request path, outermost first: the kit's RequestContextMiddleware (request id,
security headers, access log), the gateway's EdgeGuardMiddleware (431, path
tricks), the kit's MetricsMiddleware and BodyGuardMiddleware (413, 415). The
route table's requests (everything under its prefixes, ``/api/`` and
``/.well-known/``) take the kit's fast path: that stack, behind a generic
ASGI server span, straight into the pure ASGI :class:`GatewayDispatcher`,
never entering FastAPI (docs/performance.md measured FastAPI's layers and its
instrumentation at a third of the cached page's cost). Everything else
(health, metrics, docs) goes through FastAPI with the same stack.
"""

from __future__ import annotations

from importlib.metadata import version as package_version

from fastapi import FastAPI
from starlette.middleware import Middleware

from emporium_kit.app import FastPath, create_service_app
from emporium_kit.logging import configure_logging
from emporium_kit.tracing import configure_tracing
from gateway.composition import GATEWAY, build_components, health_checks
from gateway.docs import DESCRIPTION, TITLE, OwnRoutesSpec, docs_assets, docs_router
from gateway.edge import EdgeGuardMiddleware
from gateway.lifespan import gateway_lifespan
from gateway.settings import GatewaySettings


def _service_version() -> str:
    try:
        return package_version("emporium-gateway")
    except Exception:  # running from a source tree without metadata
        return "0.0.0"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    version = _service_version()
    own_spec = OwnRoutesSpec(title=TITLE, version=version)
    components = build_components(settings, version=version, gateway_spec=own_spec)
    app = create_service_app(
        service="gateway",
        title=TITLE,
        version=version,
        description=DESCRIPTION,
        settings=settings,
        lifespan=gateway_lifespan(components),
        routers=[],
        health_checks=health_checks(components),
        edge_middleware=[
            Middleware(EdgeGuardMiddleware, max_header_bytes=settings.max_header_bytes)
        ],
        fast_path=FastPath(prefixes=components.table.path_prefixes(), app=components.dispatcher),
        # FastAPI's own docs routes load Swagger UI from a CDN; the gateway serves its own.
        builtin_docs=False,
        metrics_allowed_networks=settings.metrics_allowed_networks,
        trusted_proxies=settings.trusted_proxies,
        # A client's "sampled" flag is not followed (it could have every request
        # recorded); a trusted proxy's is, and the services follow the gateway's.
        sampled_flag_trusted_from=settings.trusted_proxies,
    )
    app.include_router(docs_router(components.openapi, title=TITLE))
    own_spec.adopt(app.router.routes)
    app.router.routes.append(docs_assets())
    GATEWAY.install(app, components)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory: settings from the environment, logging configured."""
    settings = GatewaySettings()
    configure_logging("gateway", level=settings.log_level, json=settings.log_json)
    configure_tracing("gateway")
    return create_app(settings)
