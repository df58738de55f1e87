"""``python -m fxstandin``: serve the rates stand-in until SIGINT or SIGTERM."""

import asyncio
import logging
import signal

from fxstandin.server import RatesStandIn
from fxstandin.settings import StandInSettings


async def serve(settings: StandInSettings) -> None:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        async with RatesStandIn(settings):
            await stop_requested.wait()
            logging.getLogger("fxstandin").info("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main() -> None:
    settings = StandInSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(settings))
    except OSError as error:  # typically the port is taken
        logging.getLogger("fxstandin").error("cannot listen: %s", error)
        raise SystemExit(1) from error


if __name__ == "__main__":
    main()
