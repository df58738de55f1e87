"""RabbitMQ unreachable while resets are asked for: the requests are accepted, the jobs
wait in the outbox, and once the broker is back each runs and emails once.

The machine's RabbitMQ is shared with other tests, so it is never stopped: the app's
relay and the worker reach it through a TCP proxy of this test's own that refuses
every connection (and drops the open ones) for the outage: a network partition, where
the broker keeps running and no client is told why its connection died. A broker
really stopped (``rabbitmqctl stop_app``, which closes each connection with a reason,
then started) is played on a private node in ``test_reset_jobs_across_rabbitmq_stop_app.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from users_testkit import (
    AMQP_URL,
    SmtpStandIn,
    TcpProxy,
    query,
    reset_jobs_run,
    reset_tokens_of,
    running_worker,
    wait_until,
)

from emporium_testkit.isolation import truncate_all
from users.main import create_app
from users.settings import UsersSettings

PASSWORD = "outage-pass-1"


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(AMQP_URL)
    await proxy.start()
    yield proxy
    await proxy.close()


async def _outbox(settings: UsersSettings) -> list[tuple[str, bool, int]]:
    rows = await query(
        settings,
        "SELECT destination, published_at IS NOT NULL AS published, attempts FROM outbox",
    )
    return [(row.destination, row.published, row.attempts) for row in rows]


async def test_resets_asked_while_rabbitmq_is_unreachable_are_kept_and_each_emailed_once_after(
    settings: UsersSettings, proxy: TcpProxy, smtp: SmtpStandIn
) -> None:
    through_proxy = settings.model_copy(
        update={
            # The worker's robust connections retry every 0.2 s instead of every 5 s.
            "amqp_url": proxy.url(reconnect_interval="0.2"),
            "run_outbox_relay": True,
            "smtp_port": smtp.port,
        }
    )
    await truncate_all(settings.database_url, keep=("roles", "permissions", "role_permissions"))
    addresses = [f"unreachable{i}-{uuid.uuid4().hex[:8]}@example.com" for i in range(3)]
    app = create_app(through_proxy)
    async with (
        running_worker(through_proxy),
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
            base_url="http://users.test",
        ) as http,
    ):
        for address in addresses:
            registered = await http.post(
                "/api/v1/auth/register",
                json={"email": address, "password": PASSWORD, "full_name": "Offline Olga"},
            )
            assert registered.status_code == 201
        # The relay has published the registrations: its connection runs through the proxy.
        await wait_until(lambda: _all_published(through_proxy), what="the registrations published")

        proxy.go_down()
        for address in addresses:
            requested = await http.post(
                "/api/v1/auth/password-reset/request", json={"email": address}
            )
            assert requested.status_code == 202
        # The relay tried each job, could not publish it, and keeps it for later.
        await wait_until(
            lambda: _jobs_tried_and_kept(through_proxy, len(addresses)),
            within=20,
            what="every job tried and kept in the outbox",
        )
        assert proxy.refused > 0
        assert [smtp.texts(address) for address in addresses] == [[], [], []]

        proxy.come_up()
        await wait_until(
            lambda: all(smtp.texts(address) for address in addresses),
            within=40,
            what="every email after the outage",
        )
        await wait_until(
            lambda: _jobs_run_at_least(through_proxy, len(addresses)), what="every job committed"
        )
        assert [len(smtp.texts(address)) for address in addresses] == [1, 1, 1]
        assert [await reset_tokens_of(settings, address) for address in addresses] == [1, 1, 1]
        assert all(published for _, published, _ in await _outbox(through_proxy))


async def _all_published(settings: UsersSettings) -> bool:
    rows = await _outbox(settings)
    return bool(rows) and all(published for _, published, _ in rows)


async def _jobs_tried_and_kept(settings: UsersSettings, count: int) -> bool:
    jobs = [row for row in await _outbox(settings) if row[0] == "jobs"]
    return len(jobs) == count and all(not published and tries >= 1 for _, published, tries in jobs)


async def _jobs_run_at_least(settings: UsersSettings, count: int) -> bool:
    return await reset_jobs_run(settings) >= count
