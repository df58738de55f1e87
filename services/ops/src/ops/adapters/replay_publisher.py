"""Replay on RabbitMQ: the original message, confirmed, on its queue via the default exchange."""

from __future__ import annotations

import asyncio
import base64
import contextlib

import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import PublishError

from emporium_kit.messaging import CONNECT_ERRORS, connect
from emporium_kit.messaging.dead_letters import DeadLetter
from emporium_kit.problems import DependencyUnavailable
from ops.domain.dead_letters import StoredDeadLetter
from ops.domain.errors import OriginalQueueGone

log = structlog.get_logger(__name__)

BROKER = "RabbitMQ"
_UNREACHABLE: tuple[type[BaseException], ...] = (TimeoutError, *CONNECT_ERRORS)


def _as_kit_dead_letter(letter: StoredDeadLetter) -> DeadLetter:
    return DeadLetter(
        id=letter.id,
        service=letter.service,
        queue=letter.queue,
        kind=letter.kind,
        name=letter.name,
        message_id=letter.message_id,
        body_base64=base64.b64encode(letter.body).decode("ascii"),
        headers=letter.headers,
        attempts=max(1, letter.attempts),
        first_failed_at=letter.first_failed_at,
        last_failed_at=letter.last_failed_at,
        last_error=letter.last_error,
    )


class RabbitReplayPublisher:
    """Publishes replays on one robust connection, opened at the first replay.

    Each replay gets a channel of its own, with publisher confirms and returns
    raised: a message the broker cannot route (its queue was deleted) comes
    back as :class:`OriginalQueueGone` instead of vanishing, and one replay's
    channel error cannot touch another's. Replays are rare, so the channel's
    round trip costs nothing that matters.
    """

    def __init__(self, amqp_url: str, *, timeout_seconds: float) -> None:
        self._amqp_url = amqp_url
        self._timeout = timeout_seconds
        self._connection: AbstractRobustConnection | None = None
        self._connecting = asyncio.Lock()

    async def republish(self, letter: StoredDeadLetter) -> None:
        message = _as_kit_dead_letter(letter).replay_message()
        channel: AbstractChannel | None = None
        try:
            async with asyncio.timeout(self._timeout):
                connection = await self._connected()
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel.default_exchange.publish(
                    message, routing_key=letter.queue, mandatory=True
                )
        except PublishError as exc:  # returned unroutable: no queue by that name
            raise OriginalQueueGone(letter.queue) from exc
        except ValueError as exc:  # a name no queue can have (over 255 bytes)
            raise OriginalQueueGone(letter.queue) from exc
        except _UNREACHABLE as exc:
            log.warning("replay_publish_failed", queue=letter.queue, error=repr(exc))
            raise DependencyUnavailable(BROKER) from exc
        finally:
            if channel is not None:
                # The publish is decided by now; a failed close changes nothing.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), timeout=self._timeout)

    async def _connected(self) -> AbstractRobustConnection:
        async with self._connecting:
            if self._connection is None:
                self._connection = await connect(
                    self._amqp_url, connect_timeout=self._timeout, client_name="ops-replay"
                )
            return self._connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
