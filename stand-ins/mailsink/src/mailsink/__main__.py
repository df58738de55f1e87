"""``python -m mailsink``: run the sink until SIGINT or SIGTERM."""

import asyncio
import logging
import signal

from mailsink.settings import MailSinkSettings
from mailsink.sink import MailSink


async def serve(settings: MailSinkSettings) -> None:
    """Run the sink until the process is asked to stop."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        async with MailSink(settings):
            await stop_requested.wait()
            logging.getLogger("mailsink").info("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main() -> None:
    settings = MailSinkSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every connection and command at INFO; the sink logs one line per message.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings))
    except OSError as error:  # typically a port already in use
        logging.getLogger("mailsink").error("cannot listen: %s", error)
        raise SystemExit(1) from error


if __name__ == "__main__":
    main()
