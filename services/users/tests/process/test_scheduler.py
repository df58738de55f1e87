"""Two schedulers (``python -m users.scheduler``) and one worker as real processes:
every tick of each periodic clean-up is sent by one scheduler only, and runs once.

How runs are counted: each scheduler logs ``schedule_tick_sent`` (schedule, tick)
only for the ticks whose Redis lease it won, and taskiq logs "Sending task ... with
schedule_id ..." for every tick it tries; the worker logs one line per run
(``expired_credentials_deleted``, ``messages_pruned``) carrying the run's job id.
Over the window, each (schedule, tick) appears once across both schedulers, both
schedulers tried about every tick, and the worker ran each schedule exactly as many
times as ticks were sent, each run a job of its own.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest
from users_testkit import count_by, events_named, log_lines, process_env, started_worker, wait_until

from emporium_testkit.processes import ChildProcess
from users.settings import UsersSettings

SCHEDULES = {
    "users.delete-expired-credentials": "expired_credentials_deleted",
    "users.prune-outbox-and-inbox": "messages_pruned",
}
TICKS = 5  # seconds of ticks observed (the interval is 1 s)


@pytest.fixture(scope="module")
def settings(settings: UsersSettings) -> UsersSettings:
    return settings.model_copy(update={"cleanup_interval_seconds": 1})


@pytest.fixture
async def worker(settings: UsersSettings) -> AsyncIterator[ChildProcess]:
    process = await started_worker(settings)
    yield process
    await asyncio.to_thread(process.stop)


def _sent(outputs: list[str]) -> list[dict[str, object]]:
    return [line for output in outputs for line in events_named(output, "schedule_tick_sent")]


def _tried(output: str, schedule: str) -> int:
    return sum(
        1
        for line in log_lines(output)
        if str(line.get("event", "")).startswith("Sending task")
        and f"schedule_id {schedule}." in str(line["event"])
    )


async def test_two_schedulers_send_each_tick_once_and_the_worker_runs_it_once(
    settings: UsersSettings, worker: ChildProcess
) -> None:
    schedulers = [ChildProcess("users.scheduler", env=process_env(settings)) for _ in range(2)]
    try:
        # Until both have tried a tick, then TICKS more seconds of ticks.
        await wait_until(
            lambda: all(_tried(s.output(), next(iter(SCHEDULES))) for s in schedulers),
            within=30,
            what="both schedulers ticking",
        )
        await asyncio.sleep(TICKS)
        # Stopped half-way between two ticks, never in the middle of a send.
        await asyncio.sleep((0.5 - time.time() % 1) % 1)
        for scheduler in schedulers:
            scheduler.send_signal(signal.SIGTERM)
        for scheduler in schedulers:
            await asyncio.to_thread(scheduler.wait, 10)
        outputs = [scheduler.output() for scheduler in schedulers]
    finally:
        for scheduler in schedulers:
            await asyncio.to_thread(scheduler.stop)

    per_tick = count_by(_sent(outputs), "schedule", "tick")
    assert set(per_tick.values()) == {1}, per_tick  # no tick sent twice
    ticks = {
        schedule: sorted(tick for (name, tick) in per_tick if name == schedule)
        for schedule in SCHEDULES
    }
    for schedule, sent in ticks.items():
        assert len(sent) >= TICKS, (schedule, sent)
        # Both schedulers tried (nearly) every tick: the lease, not luck, kept them apart.
        for output in outputs:
            assert _tried(output, schedule) >= len(sent) - 2, (schedule, sent)

    def runs() -> dict[str, list[object]]:
        output = worker.output()
        return {
            schedule: [line["job_id"] for line in events_named(output, run_line)]
            for schedule, run_line in SCHEDULES.items()
        }

    await wait_until(
        lambda: all(len(runs()[s]) >= len(sent) for s, sent in ticks.items()),
        what="every tick run",
    )
    await asyncio.sleep(0.3)  # a second run of a tick would come with the first
    for schedule, job_ids in runs().items():
        assert len(job_ids) == len(ticks[schedule]), (schedule, ticks[schedule], job_ids)
        assert len(set(job_ids)) == len(job_ids)
