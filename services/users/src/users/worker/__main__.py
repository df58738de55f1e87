"""``python -m users.worker``: run the users jobs until Ctrl-C or SIGTERM."""

from __future__ import annotations

import sys

from emporium_kit.jobs import run_worker


def main() -> int:
    from users.worker import settings

    return run_worker(
        "users.worker:broker",
        processes=settings.worker_processes,
        max_concurrent_jobs=settings.worker_concurrency,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    sys.exit(main())
