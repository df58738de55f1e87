"""``python -m catalog.consumers``: consume the order events until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from catalog.consumers import PROCESS, run_consumers
from catalog.settings import CatalogSettings
from emporium_kit.logging import configure_logging
from emporium_kit.settings import load_settings
from emporium_kit.tracing import configure_tracing


async def _serve(settings: CatalogSettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await run_consumers(settings, stopping)


def main() -> int:
    settings = load_settings(CatalogSettings, PROCESS)
    configure_logging(PROCESS, level=settings.log_level, json=settings.log_json)
    configure_tracing(PROCESS)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
