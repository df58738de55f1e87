"""Helpers for the messaging tests: polling, draining a queue, and a TCP proxy in front
of RabbitMQ that can play an outage without touching the real broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractQueue

from emporium_testkit.proxy import TcpProxy

POSTGRES_URL = os.environ.get(
    "EMPORIUM_TEST_POSTGRES_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_kit_messaging_test",
)
AMQP_URL = os.environ.get("EMPORIUM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class MessagingTables:
    outbox: sa.Table
    inbox: sa.Table


async def drain(queue: AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message now in ``queue`` (acked). Publisher confirms have already put
    them there, so an empty ``get`` really means there is nothing more."""
    messages = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
        messages.append(message)
    return messages


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 10.0,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        outcome: Any = condition()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(interval)


class BrokerProxy(TcpProxy):
    """The testkit's TCP proxy in front of RabbitMQ (``go_down()``, ``come_up()``)."""

    @property
    def amqp_url(self) -> str:
        """``AMQP_URL`` with the proxy in place of the broker's address."""
        return self.url_for(AMQP_URL)
