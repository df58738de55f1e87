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

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from redis.exceptions import RedisError

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
        """Connects (retrying until it can), then listens until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                connection = await self._connect()
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
                log.warning("cache_invalidation_unavailable", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._reconnect_seconds)
                continue
            try:
                await self._stopping.wait()
            finally:
                await connection.close()
            return

    def stop(self) -> None:
        self._stopping.set()

    async def _connect(self) -> AbstractRobustConnection:
        connection = await aio_pika.connect_robust(
            self._amqp_url, timeout=5, reconnect_interval=self._reconnect_seconds
        )
        try:
            channel = await connection.channel()
            # Same declaration as every publisher: a durable topic exchange.
            exchange = await channel.declare_exchange(
                self._exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
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
