"""Periodic jobs, declared next to the job code, each tick run once across schedulers.

A job declares its schedule with taskiq's ``schedule`` label and a stable id::

    @broker.task(schedule=[{"interval": 3600, "schedule_id": "users.prune-outbox"}])

Any number of scheduler processes may run (for availability). Before sending
a tick, each takes a lease in Redis for that schedule and tick
(``SET key NX EX``): the first wins and sends the job, the others skip it.
Ticks are counted in whole intervals since the epoch (cron: whole minutes),
so schedulers started at different moments agree on which tick is which.
With Redis unreachable no tick is sent: a periodic clean-up waits for the
next tick rather than running twice.
"""

from __future__ import annotations

import time
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskiq import AsyncBroker, ScheduledTask, TaskiqScheduler
from taskiq.exceptions import ScheduledTaskCancelledError
from taskiq.schedule_sources import LabelScheduleSource

log = structlog.get_logger(__name__)

_MINUTE = 60


def tick_of(task: ScheduledTask, now: float) -> tuple[int, int]:
    """Which tick ``now`` belongs to for ``task``, and how long its lease must last."""
    if task.interval is not None:
        interval = (
            task.interval.total_seconds()
            if isinstance(task.interval, timedelta)
            else float(task.interval)
        )
        seconds = max(1, round(interval))
        return int(now // seconds), seconds * 2
    if task.cron is not None:
        return int(now // _MINUTE), _MINUTE * 2
    return 0, 86_400  # a one-off time: one run, ever (for a day)


class OncePerTick(LabelScheduleSource):
    """taskiq's label schedule source, with a Redis lease per schedule and tick."""

    def __init__(self, broker: AsyncBroker, redis: Redis, *, key_prefix: str = "jobs:") -> None:
        super().__init__(broker)
        self._redis = redis
        self._prefix = f"{key_prefix}tick:"

    async def pre_send(self, task: ScheduledTask) -> None:
        tick, ttl = tick_of(task, time.time())
        key = f"{self._prefix}{task.schedule_id}:{tick}"
        try:
            won = await self._redis.set(key, b"1", nx=True, ex=ttl)
        except (RedisError, OSError) as exc:
            log.warning("schedule_tick_skipped", schedule=task.schedule_id, error=repr(exc))
            raise ScheduledTaskCancelledError from exc
        if not won:
            raise ScheduledTaskCancelledError
        log.info("schedule_tick_sent", schedule=task.schedule_id, job=task.task_name, tick=tick)

    async def shutdown(self) -> None:
        await super().shutdown()
        await self._redis.aclose()


def create_scheduler(
    broker: AsyncBroker, redis_url: str, *, key_prefix: str = "jobs:"
) -> TaskiqScheduler:
    """The scheduler a service's scheduler process runs (``emporium_kit.jobs.run_scheduler``)."""
    redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    return TaskiqScheduler(broker, sources=[OncePerTick(broker, redis, key_prefix=key_prefix)])
