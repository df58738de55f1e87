"""``python -m gateway``: serves the gateway with uvicorn (uvloop, httptools).

With several workers, prometheus-client needs a shared directory for its
multiprocess mode; when PROMETHEUS_MULTIPROC_DIR is not set, a fresh temporary
one is made for this run.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import uvicorn

from gateway.settings import GatewaySettings

# h11 only (httptools has no such limit): leave room above our own 431 check so
# that clients get a problem document rather than a bare 400 from the parser.
_PARSER_HEADROOM_BYTES = 4096


def main() -> None:
    settings = GatewaySettings()
    made_metrics_dir: str | None = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made_metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_metrics_dir
    try:
        _serve(settings)
    finally:
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


def _serve(settings: GatewaySettings) -> None:
    uvicorn.run(
        "gateway.main:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        server_header=False,
        proxy_headers=False,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        h11_max_incomplete_event_size=settings.max_header_bytes + _PARSER_HEADROOM_BYTES,
        log_config=None,
    )


if __name__ == "__main__":
    main()
