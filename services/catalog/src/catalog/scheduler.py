"""``python -m catalog.scheduler``: send the catalogue's periodic jobs (the exchange-rate
refresh, the outbox and inbox clean-up).

Any number may run; each tick is sent once (``emporium_kit.jobs.scheduler``).
"""

from __future__ import annotations

import sys

from emporium_kit.jobs import run_scheduler
from emporium_kit.logging import configure_logging


def main() -> int:
    from catalog.worker import settings

    configure_logging("catalog-scheduler", level=settings.log_level, json=settings.log_json)
    return run_scheduler("catalog.worker:scheduler", log_level=settings.log_level)


if __name__ == "__main__":
    sys.exit(main())
