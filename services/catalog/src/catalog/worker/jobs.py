"""The catalogue's periodic jobs, wired to their adapters.

* ``catalog.refresh_exchange_rates`` (every ``CATALOG_FX_REFRESH_SECONDS``): fetch the
  provider's latest table for ``CATALOG_FX_BASE_CURRENCY`` and store it in Redis with
  its as-of. A provider outage (after the fetch's own retries, or an open circuit) is
  logged and the job ends: the next tick tries again, and reads keep the last known
  rates with their as-of meanwhile (a dead letter per tick would say nothing more). A
  refusal (an unknown base: misconfiguration) and an unreachable Redis raise: the
  first is dead-lettered at once, the second retried.
* ``catalog.prune_outbox_and_inbox`` (every ``CATALOG_CLEANUP_INTERVAL_SECONDS``):
  delete published outbox and processed inbox rows past their age.

Both are idempotent: a refresh stores the newest table whoever ran it; a prune
deletes by age, so a second run finds nothing left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask

from catalog.adapters.db.cleanup import prune_outbox_and_inbox
from emporium_kit.exchange_rates import CircuitOpen, ExchangeRates, ProviderUnavailable

log = structlog.get_logger(__name__)

REFRESH_EXCHANGE_RATES = "catalog.refresh_exchange_rates"
PRUNE_OUTBOX_AND_INBOX = "catalog.prune_outbox_and_inbox"
REFRESH_SCHEDULE_ID = "catalog.refresh-exchange-rates"
PRUNE_SCHEDULE_ID = "catalog.prune-outbox-and-inbox"


@dataclass(frozen=True, slots=True)
class WorkerComponents:
    """What the jobs are given, built by the worker's composition root at start-up."""

    rates: ExchangeRates
    engine: AsyncEngine
    prune_after: timedelta


@dataclass(frozen=True, slots=True)
class CatalogJobs:
    refresh_exchange_rates: AsyncTaskiqDecoratedTask[Any, Any]
    prune_outbox_and_inbox: AsyncTaskiqDecoratedTask[Any, Any]


def declare_jobs(
    broker: AsyncBroker,
    components: Callable[[], WorkerComponents],
    *,
    refresh_every: int,
    cleanup_every: int,
) -> CatalogJobs:
    """Declare every catalogue job on ``broker``; ``components`` gives them their parts."""

    async def refresh_exchange_rates() -> None:
        rates = components().rates
        try:
            table = await rates.refresh()
        except CircuitOpen as paused:
            log.warning("fx_refresh_skipped", reason=str(paused))
            return
        except ProviderUnavailable as error:
            log.warning("fx_refresh_failed", error=str(error))
            return
        log.info(
            "fx_refresh_done",
            base=table.base,
            currencies=len(table.rates),
            rates_date=table.rates_date.isoformat(),
            as_of=table.fetched_at.isoformat(),
        )

    async def prune_messages() -> None:
        parts = components()
        outbox_rows, inbox_rows = await prune_outbox_and_inbox(
            parts.engine, older_than=parts.prune_after
        )
        log.info("messages_pruned", outbox=outbox_rows, inbox=inbox_rows)

    return CatalogJobs(
        refresh_exchange_rates=broker.task(
            task_name=REFRESH_EXCHANGE_RATES,
            schedule=[{"interval": refresh_every, "schedule_id": REFRESH_SCHEDULE_ID}],
            max_attempts=3,
        )(refresh_exchange_rates),
        prune_outbox_and_inbox=broker.task(
            task_name=PRUNE_OUTBOX_AND_INBOX,
            schedule=[{"interval": cleanup_every, "schedule_id": PRUNE_SCHEDULE_ID}],
            max_attempts=3,
        )(prune_messages),
    )
