"""Clears the response cache when the catalogue changes, from RabbitMQ events.

Each gateway replica binds its own exclusive, auto-deleted, non-durable queue
to the ``emporium.events`` topic exchange with ``catalog.#``: every replica
sees every catalogue event, and a replica that goes away leaves no queue
behind. Any such event bumps the cache generation (one ``INCR``), which
retires every cached entry at once; being coarse is cheap and always correct.

Events published while the gateway was disconnected are lost to it, so every
(re)connection bumps the generation too. RabbitMQ being down never stops the
gateway: entries then live at most ``GATEWAY_CACHE_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from redis.exceptions import RedisError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_when_event_set,
    wait_random_exponential,
)

from emporium_kit.messaging import CONNECT_ERRORS, connect, declare_events_exchange
from gateway.cache import ResponseCache

log = structlog.get_logger(__name__)


class CatalogEventsListener:
    def __init__(
        self,
        cache: ResponseCache,
        *,
        amqp_url: str,
        exchange: str,
        binding_key: str,
        reconnect_seconds: float,
    ) -> None:
        self._cache = cache
        self._amqp_url = amqp_url
        self._exchange = exchange
        self._binding_key = binding_key
        self._reconnect_seconds = reconnect_seconds
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once the queue is bound and consuming (tests wait for it)."""

    async def run(self) -> None:
        """Connects (retrying with jittered backoff until it can), then listens until
        :meth:`stop`. Once connected, the robust connection reconnects by itself."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(CONNECT_ERRORS),
            wait=wait_random_exponential(multiplier=0.5, max=self._reconnect_seconds),
            stop=stop_when_event_set(self._stopping),  # type: ignore[arg-type]
            sleep=self._pause,
            before_sleep=_log_unavailable,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    connection = await self._connect()
        except RetryError:
            return  # stopped before the broker came back
        try:
            await self._stopping.wait()
        finally:
            await connection.close()

    async def _pause(self, seconds: float) -> None:
        """tenacity's sleep between attempts, cut short by :meth:`stop`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        self._stopping.set()

    async def _connect(self) -> AbstractRobustConnection:
        connection = await connect(
            self._amqp_url,
            connect_timeout=5,
            reconnect_interval=self._reconnect_seconds,
            client_name="gateway-cache-invalidation",
        )
        try:
            channel = await connection.channel()
            # Same declaration as every publisher: a durable topic exchange.
            exchange = await declare_events_exchange(channel, self._exchange)
            # Named by us, not by the server: a robust reconnect re-declares it.
            queue = await channel.declare_queue(
                f"gateway.cache-invalidation.{uuid.uuid4().hex}",
                exclusive=True,
                auto_delete=True,
                durable=False,
            )
            await queue.bind(exchange, routing_key=self._binding_key)
            await queue.consume(self._on_message, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        connection.reconnect_callbacks.add(self._on_reconnect)
        # Anything published before we were listening may have been missed.
        await self._invalidate("connected")
        self.ready.set()
        log.info("cache_invalidation_listening", binding=self._binding_key)
        return connection

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await self._invalidate(message.routing_key or "")

    async def _on_reconnect(self, *_: Any) -> None:
        await self._invalidate("reconnected")

    async def _invalidate(self, reason: str) -> None:
        try:
            await self._cache.invalidate()
        except (RedisError, OSError) as exc:
            log.warning("cache_invalidation_failed", reason=reason, error=repr(exc))
        else:
            log.info("cache_invalidated", reason=reason)


def _log_unavailable(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("cache_invalidation_unavailable", error=repr(error), attempt=state.attempt_number)
