"""``python -m catalog.worker``: run the catalogue's jobs until Ctrl-C or SIGTERM."""

from __future__ import annotations

import sys

from emporium_kit.jobs import run_worker


def main() -> int:
    from catalog.worker import settings

    return run_worker(
        "catalog.worker:broker",
        processes=settings.worker_processes,
        max_concurrent_jobs=settings.worker_concurrency,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    sys.exit(main())
