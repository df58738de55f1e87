"""The outbox relay: publishes committed outbox rows to RabbitMQ, at least once.

A pass locks a batch of due rows (``FOR UPDATE SKIP LOCKED``, so any number of
replicas can run side by side without publishing a row twice), publishes them on a
channel with publisher confirms, and marks the confirmed ones published in the same
transaction. A row whose publication is not confirmed stays unpublished: its
``attempts`` grows, ``last_error`` says why and ``next_attempt_at`` moves back with
capped exponential backoff and jitter, so it is retried, never dropped. A crash
between the broker's confirm and the commit publishes a row again later, which is
why consumers deduplicate on the message id.

The relay listens (``LISTEN``) on its outbox's channel (:func:`.outbox.notify_channel`)
on a connection of its own: every committed write through ``add_event`` or
``add_job`` wakes it, so a row is published within ``wake_min_interval``
instead of up to ``poll_interval`` later (under load, the passes still come at
most that often, so each takes a batch). The poll stays: for rows written
around the kit, retries coming due, and notifications missed while the
listening connection was being replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import aio_pika
import orjson
import sqlalchemy as sa
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aiormq.exceptions import DeliveryError
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from emporium_kit.retrying import backoff_seconds
from emporium_kit.tracing import SpanKind, continue_trace, current_trace_headers, untraced

from .broker import (
    DEFAULT_CONNECT_TIMEOUT,
    connect,
    declare_events_exchange,
    declare_jobs_exchange,
)
from .envelope import EventEnvelope
from .outbox import notify_channel

logger = structlog.get_logger()

OUTBOX_LAG = Gauge(
    "outbox_lag_seconds",
    "Age of the oldest row of an outbox still to publish (0 when none)",
    ["outbox"],
)
OUTBOX_PENDING = Gauge("outbox_pending_rows", "Rows of an outbox still to publish", ["outbox"])
_LAG_SAMPLE_SECONDS = 5.0

_MAX_ERROR_LENGTH = 2000


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): tenacity's full-jitter
    exponential (``emporium_kit.retrying``), so replicas and rows never retry in
    lockstep; never below a millisecond, so a row is always pushed back."""
    return max(0.001, backoff_seconds(attempt, base=base, cap=cap))


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR_LENGTH]


JOBS = "jobs"


def _job_message_for(row: Any) -> aio_pika.Message:
    """The persistent AMQP message for one enqueued job, as the job library sends it:
    the job message as the JSON body, its id, name and labels as headers.

    The labels get the current trace context (the relay's producer span), which the
    worker's span continues: the job joins the trace of the request that enqueued it.
    """
    job = dict(row.payload)
    labels = {**job.get("labels", {}), **current_trace_headers()}
    job["labels"] = labels
    headers: dict[str, Any] = {
        key: value for key, value in labels.items() if isinstance(value, str | int | bool)
    }
    return aio_pika.Message(
        body=orjson.dumps(job),
        message_id=str(job["task_id"]),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={**headers, "task_id": str(job["task_id"]), "task_name": str(job["task_name"])},
        timestamp=row.occurred_at,
    )


def _message_for(row: Any) -> aio_pika.Message:
    """The persistent AMQP message for one outbox row; its body is the envelope."""
    envelope = EventEnvelope(
        id=row.id,
        type=row.routing_key,
        occurred_at=row.occurred_at,
        payload=row.payload,
        headers=row.headers or {},
    )
    return aio_pika.Message(
        body=envelope.to_json(),
        message_id=str(envelope.id),
        type=envelope.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=dict(envelope.headers),
        timestamp=envelope.occurred_at,
    )


class _BrokerUnavailableError(Exception):
    """No channel to publish on; ``attempted`` is False while reconnects are backing off."""

    def __init__(self, message: str, *, attempted: bool) -> None:
        super().__init__(message)
        self.attempted = attempted


class OutboxRelay:
    """Publishes the rows of one outbox table: events to :data:`~.broker.EXCHANGE`,
    jobs (``destination = 'jobs'``) to :data:`~.broker.JOBS_EXCHANGE`.

    ``run()`` loops until ``stop()``; ``publish_pending()`` is one pass. A pass whose
    batch was full is followed immediately by another, otherwise the relay waits
    ``poll_interval``. Published rows older than ``retention`` are deleted every
    ``purge_interval`` seconds; ``None`` leaves that to a scheduled job
    (``messaging.tables.prune_messaging_tables``, as the services with a worker do).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: sa.Table,
        amqp_url: str,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        publish_timeout: float = 10.0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        reconnect_base_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        retention: timedelta = timedelta(days=7),
        purge_interval: float | None = 3600.0,
        name: str = "outbox-relay",
        listen: bool = True,
        wake_min_interval: float = 0.1,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._outbox = outbox
        self._amqp_url = amqp_url
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._reconnect_base_delay = reconnect_base_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._retention = retention
        self._purge_interval = purge_interval
        self._name = name
        self._log = logger.bind(relay=name, outbox=outbox.name)

        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._jobs_exchange: AbstractExchange | None = None
        self._connect_failures = 0
        self._reconnect_not_before = 0.0

        self._stop_requested = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._failed_passes = 0

        self._listen = listen
        self._wake_min_interval = wake_min_interval
        self._notify_channel = notify_channel(outbox)
        self._wake = asyncio.Event()
        self._listener: AsyncConnection | None = None
        self._listener_driver: Any = None
        self._listen_not_before = 0.0
        self._wake_ups = 0

    @property
    def failed_passes(self) -> int:
        """How many passes of :meth:`run` have failed (database errors and the like)."""
        return self._failed_passes

    @property
    def listening(self) -> bool:
        """Whether the relay is listening for its outbox's notifications right now."""
        driver = self._listener_driver
        return driver is not None and not driver.is_closed()

    @property
    def wake_ups(self) -> int:
        """How many notifications of committed rows the relay has received."""
        return self._wake_ups

    # -- one pass -------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """Publish one batch of due rows; return how many were confirmed and marked."""
        outbox = self._outbox
        async with self._engine.connect() as conn, conn.begin():
            rows = (
                await conn.execute(
                    sa.select(
                        outbox.c.id,
                        outbox.c.destination,
                        outbox.c.routing_key,
                        outbox.c.payload,
                        outbox.c.headers,
                        outbox.c.occurred_at,
                        outbox.c.attempts,
                    )
                    .where(outbox.c.published_at.is_(None))
                    .where(outbox.c.next_attempt_at <= sa.func.now())
                    .order_by(outbox.c.occurred_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0

            try:
                events, jobs = await self._ensure_exchanges()
            except _BrokerUnavailableError as exc:
                if exc.attempted:
                    await self._record_failures(conn, [(row, str(exc)) for row in rows])
                return 0

            published: list[Any] = []
            failed: list[tuple[Any, str]] = []
            messages: list[tuple[Any, aio_pika.Message | None]] = []
            for row in rows:
                if row.destination == JOBS:
                    # Built in the producer span, where the labels get its context.
                    messages.append((row, None))
                    continue
                try:
                    messages.append((row, _message_for(row)))
                except ValueError as exc:
                    # A row no envelope can hold (written around add_event): it stays,
                    # visible through last_error, and never blocks the rows after it.
                    failed.append((row, f"unpublishable row: {_describe(exc)}"))

            outcomes = await asyncio.gather(
                *(
                    self._publish_traced(jobs if row.destination == JOBS else events, row, message)
                    for row, message in messages
                ),
                return_exceptions=True,
            )
            connection_broken = False
            for (row, _), outcome in zip(messages, outcomes, strict=True):
                if outcome is None:
                    published.append(row.id)
                    continue
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                failed.append((row, _describe(outcome)))
                # A nack is the broker's answer on a healthy channel; anything else
                # (timeout, closed channel, lost connection) means reconnecting.
                connection_broken = connection_broken or not isinstance(outcome, DeliveryError)

            if published:
                await conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id.in_(published))
                    .values(published_at=sa.func.now())
                )
            if failed:
                await self._record_failures(conn, failed)

        if failed:
            self._log.warning(
                "outbox_publish_failed",
                failed=len(failed),
                published=len(published),
                error=failed[0][1],
            )
        if connection_broken:
            await self._reset_connection()
        if published:
            self._log.debug("outbox_published", published=len(published))
        return len(published)

    async def sample_lag(self) -> tuple[float, int]:
        """Set the outbox lag and pending gauges (one indexed query); returns them."""
        outbox = self._outbox
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        sa.func.coalesce(
                            sa.func.extract(
                                "epoch", sa.func.now() - sa.func.min(outbox.c.occurred_at)
                            ),
                            0,
                        ),
                        sa.func.count(),
                    ).where(outbox.c.published_at.is_(None))
                )
            ).one()
        lag, pending = float(row[0]), int(row[1])
        OUTBOX_LAG.labels(outbox=outbox.name).set(lag)
        OUTBOX_PENDING.labels(outbox=outbox.name).set(pending)
        return lag, pending

    async def purge_published(self) -> int:
        """Delete rows published longer ago than the retention; return how many."""
        outbox = self._outbox
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.delete(outbox).where(outbox.c.published_at < sa.func.now() - self._retention)
            )
        deleted = int(result.rowcount)
        if deleted:
            self._log.info("outbox_purged", deleted=deleted)
        return deleted

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Publish until :meth:`stop` is called. Errors are logged and retried with
        backoff; only cancellation ends this coroutine early."""
        if self._running:
            raise RuntimeError(f"relay {self._name!r} is already running")
        self._running = True
        self._finished.clear()
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        next_lag_sample = loop.time()
        pass_failures = 0
        self._log.info("outbox_relay_started")
        try:
            # Polling is no request's work: only a published row's span is recorded.
            with untraced():
                while not self._stop_requested.is_set():
                    delay = self._poll_interval
                    await self._ensure_listening()
                    self._wake.clear()  # a notification from here on means another pass
                    pass_started = loop.time()
                    try:
                        published = await self.publish_pending()
                        if loop.time() >= next_lag_sample:
                            await self.sample_lag()
                            next_lag_sample = loop.time() + _LAG_SAMPLE_SECONDS
                        if self._purge_interval is not None and loop.time() >= next_purge:
                            await self.purge_published()
                            next_purge = loop.time() + self._purge_interval
                        pass_failures = 0
                        if published >= self._batch_size:
                            delay = 0.0
                    except Exception:
                        pass_failures += 1
                        self._failed_passes += 1
                        delay = backoff_delay(
                            pass_failures,
                            base=max(self._poll_interval, 0.1),
                            cap=self._reconnect_max_delay,
                        )
                        self._log.exception(
                            "outbox_relay_pass_failed", failures=pass_failures, retry_in=delay
                        )
                    if pass_failures:
                        await self._sleep_unless_stopped(delay)
                    elif await self._wait_for_wake(delay):
                        # Woken by a commit: not sooner than wake_min_interval after the
                        # last pass, so that under load each pass takes a batch.
                        await self._sleep_unless_stopped(
                            pass_started + self._wake_min_interval - loop.time()
                        )
        finally:
            await self.close()
            self._running = False
            self._stop_requested.clear()  # a stop() before run() still counts; reset only here
            self._finished.set()
            self._log.info("outbox_relay_stopped")

    async def stop(self) -> None:
        """Ask :meth:`run` to finish its current pass and return; wait until it has."""
        self._stop_requested.set()
        self._wake.set()
        if self._running:
            await self._finished.wait()

    async def close(self) -> None:
        """Close the broker connection and the listening one (``run`` does this itself
        when it ends)."""
        await self._reset_connection()
        await self._stop_listening()

    async def _wait_for_wake(self, delay: float) -> bool:
        """Wait up to ``delay`` for a notification (or :meth:`stop`); whether one came."""
        if delay <= 0:
            await asyncio.sleep(0)
            return False
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            return False
        return not self._stop_requested.is_set()

    # -- notifications ------------------------------------------------------------------

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._wake_ups += 1
        self._wake.set()

    async def _ensure_listening(self) -> None:
        """LISTEN on a connection of the relay's own, (re)opened when it is missing or
        lost; a failure leaves the relay polling and is tried again a little later."""
        if not self._listen or self.listening:
            return
        await self._stop_listening()
        loop = asyncio.get_running_loop()
        if loop.time() < self._listen_not_before:
            return
        connection: AsyncConnection | None = None
        try:
            connection = await self._engine.connect()
            driver: Any = (await connection.get_raw_connection()).driver_connection
            if not callable(getattr(driver, "add_listener", None)):
                self._listen = False  # not asyncpg: polling only
                self._log.info("outbox_listen_unsupported", driver=type(driver).__name__)
                await connection.close()
                return
            await driver.add_listener(self._notify_channel, self._on_notify)
        except Exception as exc:
            if connection is not None:
                await self._close_listener_connection(connection, invalidate=True)
            self._listen_not_before = loop.time() + max(self._poll_interval, 1.0) * 5
            self._log.warning("outbox_listen_failed", error=_describe(exc))
            return
        self._listener, self._listener_driver = connection, driver
        # Rows committed while nobody listened: the pass about to start takes them.
        self._log.debug("outbox_listening", channel=self._notify_channel)

    async def _stop_listening(self) -> None:
        connection, driver = self._listener, self._listener_driver
        self._listener = self._listener_driver = None
        if connection is None:
            return
        alive = driver is not None and not driver.is_closed()
        if alive:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await driver.remove_listener(self._notify_channel, self._on_notify)
            except Exception as exc:
                self._log.debug("outbox_unlisten_failed", error=_describe(exc))
                alive = False
        await self._close_listener_connection(connection, invalidate=not alive)

    async def _close_listener_connection(
        self, connection: AsyncConnection, *, invalidate: bool
    ) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                if invalidate:
                    await connection.invalidate()
                await connection.close()
        except Exception as exc:
            self._log.debug("outbox_listener_close_failed", error=_describe(exc))

    async def _sleep_unless_stopped(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        try:
            async with asyncio.timeout(delay):
                await self._stop_requested.wait()
        except TimeoutError:
            pass

    # -- broker -------------------------------------------------------------------------

    async def _ensure_exchanges(self) -> tuple[AbstractExchange, AbstractExchange]:
        """The events exchange and the jobs exchange, on one confirming channel."""
        if (
            self._exchange is not None
            and self._jobs_exchange is not None
            and self._channel is not None
            and not self._channel.is_closed
        ):
            return self._exchange, self._jobs_exchange
        if self._connection is not None:
            await self._reset_connection()

        loop = asyncio.get_running_loop()
        wait = self._reconnect_not_before - loop.time()
        if wait > 0:
            raise _BrokerUnavailableError(
                f"broker unavailable; next connection attempt in {wait:.2f}s", attempted=False
            )
        connection: AbstractRobustConnection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                connection = await connect(
                    self._amqp_url, connect_timeout=self._connect_timeout, client_name=self._name
                )
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await declare_events_exchange(channel)
                jobs_exchange = await declare_jobs_exchange(channel)
        except Exception as exc:
            if connection is not None:
                await self._close_quietly(connection)
            self._connect_failures += 1
            retry_in = backoff_delay(
                self._connect_failures,
                base=self._reconnect_base_delay,
                cap=self._reconnect_max_delay,
            )
            self._reconnect_not_before = loop.time() + retry_in
            self._log.warning(
                "outbox_broker_connect_failed",
                error=_describe(exc),
                failures=self._connect_failures,
                retry_in=retry_in,
            )
            raise _BrokerUnavailableError(
                f"cannot connect to the broker: {_describe(exc)}", attempted=True
            ) from exc

        if self._connect_failures:
            self._log.info("outbox_broker_reconnected", after_failures=self._connect_failures)
        self._connect_failures = 0
        self._connection, self._channel = connection, channel
        self._exchange, self._jobs_exchange = exchange, jobs_exchange
        return exchange, jobs_exchange

    async def _publish_traced(
        self, exchange: AbstractExchange, row: Any, message: aio_pika.Message | None
    ) -> None:
        """Publishes in a producer span that continues the trace stored with the row;
        the message's AMQP headers carry that span's context to the consumer."""
        with continue_trace(
            f"{row.routing_key} publish",
            row.headers,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": row.routing_key,
                "messaging.message.id": str(row.id),
            },
        ):
            if message is None:  # a job: its labels carry this span's context
                message = _job_message_for(row)
            else:
                message.headers = {**(message.headers or {}), **current_trace_headers()}
            # A job must reach its queue: unroutable (no worker has declared the
            # queue yet) is a failed publish, retried with backoff. An event nobody
            # subscribes to is simply not delivered.
            await self._publish(
                exchange, row.routing_key, message, mandatory=row.destination == JOBS
            )

    async def _publish(
        self,
        exchange: AbstractExchange,
        routing_key: str,
        message: aio_pika.Message,
        *,
        mandatory: bool,
    ) -> None:
        # The robust channel waits for a reconnection before publishing, so the whole
        # call (not only the confirm) is bounded.
        async with asyncio.timeout(self._publish_timeout):
            await exchange.publish(message, routing_key, mandatory=mandatory)

    async def _reset_connection(self) -> None:
        connection = self._connection
        self._connection = self._channel = self._exchange = self._jobs_exchange = None
        if connection is not None:
            await self._close_quietly(connection)

    async def _close_quietly(self, connection: AbstractRobustConnection) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await connection.close()
        except Exception as exc:
            self._log.debug("outbox_broker_close_failed", error=_describe(exc))

    # -- bookkeeping ----------------------------------------------------------------------

    async def _record_failures(
        self, conn: AsyncConnection, failures: Sequence[tuple[Any, str]]
    ) -> None:
        outbox = self._outbox
        statement = (
            sa.update(outbox)
            .where(outbox.c.id == sa.bindparam("b_id"))
            .values(
                attempts=outbox.c.attempts + 1,
                last_error=sa.bindparam("b_error"),
                next_attempt_at=sa.func.now() + sa.bindparam("b_delay", type_=sa.Interval()),
            )
        )
        await conn.execute(
            statement,
            [
                {
                    "b_id": row.id,
                    "b_error": error[:_MAX_ERROR_LENGTH],
                    "b_delay": timedelta(
                        seconds=backoff_delay(
                            row.attempts + 1,
                            base=self._retry_base_delay,
                            cap=self._retry_max_delay,
                        )
                    ),
                }
                for row, error in failures
            ],
        )
