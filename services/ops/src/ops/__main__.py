"""``python -m ops``: serves the ops service with the kit's uvicorn set-up."""

from __future__ import annotations

from emporium_kit.serving import serve
from emporium_kit.settings import load_settings
from ops.settings import OpsSettings


def main() -> None:
    settings = load_settings(OpsSettings, "ops")
    serve(
        "ops.main:app_from_environment",
        host=settings.host,
        port=settings.port,
        max_header_bytes=settings.max_header_bytes,
    )


if __name__ == "__main__":
    main()
