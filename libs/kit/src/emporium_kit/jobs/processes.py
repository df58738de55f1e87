"""The worker and scheduler processes of a service, on taskiq's own runners.

A service's ``python -m <service>.worker`` calls :func:`run_worker` and its
``python -m <service>.scheduler`` calls :func:`run_scheduler`, naming the
module attribute that holds its broker or scheduler. taskiq's worker process
manager handles signals: Ctrl-C or SIGTERM stops taking messages, lets the
running jobs finish for up to ``wait_seconds`` and hands back the rest
(unacknowledged, so RabbitMQ delivers them again); a job killed outright is
delivered again for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib


def run_worker(
    broker: str,
    *,
    processes: int = 1,
    max_concurrent_jobs: int = 100,
    wait_seconds: float = 30.0,
    log_level: str = "INFO",
) -> int:
    """Run the worker for ``broker`` (``"users.worker:broker"``) until stopped."""
    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.cli.worker.run import run_worker as taskiq_run_worker

    args = WorkerArgs.from_cli(
        [
            broker,
            "--workers",
            str(processes),
            "--max-async-tasks",
            str(max_concurrent_jobs),
            "--ack-type",
            "when_saved",
            "--wait-tasks-timeout",
            str(wait_seconds),
            "--shutdown-timeout",
            str(wait_seconds + 5),
            "--log-level",
            log_level,
            "--no-configure-logging",
        ]
    )
    return taskiq_run_worker(args) or 0


def run_scheduler(scheduler: str, *, log_level: str = "INFO") -> int:
    """Run the scheduler ``scheduler`` (``"users.worker:scheduler"``) until stopped."""
    from taskiq.cli.scheduler.args import SchedulerArgs
    from taskiq.cli.scheduler.run import run_scheduler as taskiq_run_scheduler

    args = SchedulerArgs(scheduler=scheduler, modules=[], configure_logging=False)
    args.log_level = log_level  # type: ignore[assignment]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(taskiq_run_scheduler(args))
    return 0
