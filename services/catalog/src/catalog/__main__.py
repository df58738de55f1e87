"""``python -m catalog``: serves the catalogue service with the kit's uvicorn set-up."""

from __future__ import annotations

from catalog.settings import CatalogSettings
from emporium_kit.serving import serve
from emporium_kit.settings import load_settings


def main() -> None:
    settings = load_settings(CatalogSettings, "catalog")
    serve(
        "catalog.main:app_from_environment",
        host=settings.host,
        port=settings.port,
        max_header_bytes=settings.max_header_bytes,
    )


if __name__ == "__main__":
    main()
