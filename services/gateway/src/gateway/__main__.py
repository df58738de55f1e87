"""``python -m gateway``: serves the gateway with the kit's uvicorn set-up."""

from __future__ import annotations

from emporium_kit.serving import serve
from emporium_kit.settings import load_settings
from gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings(GatewaySettings, "gateway")
    serve(
        "gateway.main:app_from_environment",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        max_header_bytes=settings.max_header_bytes,
        graceful_shutdown_seconds=settings.graceful_shutdown_seconds,
    )


if __name__ == "__main__":
    main()
