"""The reset-email job against a scripted SMTP server: an outage is waited out with
retries and each email still arrives once, a refusal for good is dead-lettered at
once, a failure past the job's attempts is dead-lettered and its replay sends once.

The app (with its outbox relay) and the users worker run in this event loop on the
real PostgreSQL, RabbitMQ and Redis; jobs and dead letters go to this module's own
queues.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from fastapi import FastAPI
from prometheus_client import REGISTRY
from users_testkit import (
    AMQP_URL,
    SEND_RESET_EMAIL,
    SmtpStandIn,
    query,
    reset_jobs_run,
    reset_token_in,
    reset_tokens_of,
    wait_until,
)

from emporium_kit.messaging.dead_letters import DeadLetter, declare_dead_letters
from users.settings import UsersSettings
from users.worker import UsersWorker


@pytest.fixture(scope="module")
def settings(settings: UsersSettings, smtp: SmtpStandIn) -> UsersSettings:
    return settings.model_copy(update={"run_outbox_relay": True, "smtp_port": smtp.port})


@pytest.fixture
async def app(worker: UsersWorker, app: FastAPI) -> FastAPI:
    return app


@pytest.fixture
async def amqp_channel() -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    async with connection:
        yield await connection.channel()


@pytest.fixture
async def dead_letters(amqp_channel: AbstractChannel, settings: UsersSettings) -> AbstractQueue:
    """This module's dead-letters queue, emptied of what earlier tests left."""
    _, queue = await declare_dead_letters(amqp_channel, settings.dead_letters_queue)
    await queue.purge()
    return queue


def _address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"job": SEND_RESET_EMAIL}) or 0.0


async def _request_reset(identity: Any, email: str) -> None:
    response = await identity.http.post(
        "/api/v1/auth/password-reset/request", json={"email": email}
    )
    assert response.status_code == 202


async def _next_dead_letter(queue: AbstractQueue) -> DeadLetter:
    async def arrived() -> aio_pika.abc.AbstractIncomingMessage | None:
        return await queue.get(no_ack=True, fail=False)

    message = await wait_until(arrived, within=20, what="a dead letter")
    return DeadLetter.model_validate_json(message.body)


async def _job_ids(settings: UsersSettings) -> list[uuid.UUID]:
    rows = await query(settings, "SELECT id FROM outbox WHERE destination = 'jobs'")
    return [row.id for row in rows]


async def test_resets_asked_while_smtp_is_down_are_each_emailed_once_when_it_is_back(
    identity: Any, smtp: SmtpStandIn, settings: UsersSettings
) -> None:
    addresses = [_address(f"outage{i}") for i in range(5)]
    for address in addresses:
        await identity.register(address)
    retried = _metric("jobs_retried_total")
    smtp.stop()
    try:
        for address in addresses:
            await _request_reset(identity, address)
        # The jobs fail (connection refused, after the sender's own tries) and wait for
        # their next attempt in the delay queue; nothing committed, nothing sent.
        await wait_until(
            lambda: _metric("jobs_retried_total") - retried >= len(addresses),
            within=20,
            what="a failed attempt per job",
        )
        assert await reset_jobs_run(settings) == 0
        assert [await reset_tokens_of(settings, a) for a in addresses] == [0] * 5
    finally:
        smtp.start()

    await wait_until(lambda: all(smtp.texts(a) for a in addresses), within=20, what="every email")
    await wait_until(lambda: _jobs_run_at_least(settings, 5), what="every job committed")
    assert [len(smtp.texts(a)) for a in addresses] == [1] * 5
    assert [await reset_tokens_of(settings, a) for a in addresses] == [1] * 5
    assert await reset_jobs_run(settings) == 5


async def _jobs_run_at_least(settings: UsersSettings, count: int) -> bool:
    return await reset_jobs_run(settings) >= count


async def test_a_reset_email_refused_for_now_is_rolled_back_and_sent_on_a_later_attempt(
    identity: Any, smtp: SmtpStandIn, settings: UsersSettings
) -> None:
    address = _address("later")
    await identity.register(address)
    # More 451s than the sender's own tries (3): the job's first attempt fails and
    # rolls back its token; the job's second attempt is accepted.
    smtp.fail_data[address] = 3
    await _request_reset(identity, address)
    await wait_until(lambda: smtp.texts(address), within=20, what="the email")
    await wait_until(lambda: _jobs_run_at_least(settings, 1), what="the job committed")
    assert smtp.data_attempts[address] == 4
    [text] = smtp.texts(address)
    # Only the token that was sent exists: the refused attempt's rolled back with it.
    assert await reset_tokens_of(settings, address) == 1
    confirmed = await identity.http.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": reset_token_in(text), "new_password": "after-refusal-2"},
    )
    assert confirmed.status_code == 204


async def test_a_reset_email_refused_for_good_is_dead_lettered_at_once(
    identity: Any, smtp: SmtpStandIn, settings: UsersSettings, dead_letters: AbstractQueue
) -> None:
    address = _address("refused")
    await identity.register(address)
    smtp.refuse_rcpt[address] = "550 5.1.1 no such mailbox here (test)"
    await _request_reset(identity, address)

    letter = await _next_dead_letter(dead_letters)
    [job_id] = await _job_ids(settings)
    assert (letter.kind, letter.name, letter.service) == ("job", SEND_RESET_EMAIL, "users")
    assert (letter.queue, letter.message_id) == (settings.jobs_queue, job_id.hex)
    assert letter.attempts == 1
    assert letter.last_error.startswith("EmailDeliveryRefused: ")
    assert "550" in letter.last_error
    # Neither the sender nor the job tried again; the attempt's token and its inbox row
    # rolled back (so a replay, once the address is fixed, runs it).
    assert smtp.rcpt_attempts[address] == 1
    assert smtp.texts(address) == []
    assert await reset_tokens_of(settings, address) == 0
    assert await reset_jobs_run(settings) == 0


async def test_a_reset_email_failing_past_its_attempts_is_dead_lettered_and_a_replay_sends_it_once(
    identity: Any,
    worker: UsersWorker,
    smtp: SmtpStandIn,
    settings: UsersSettings,
    dead_letters: AbstractQueue,
    amqp_channel: AbstractChannel,
) -> None:
    address = _address("flaky")
    await identity.register(address)
    smtp.fail_data[address] = -1  # 451 to every DATA: transient, for ever
    # The job's own limit is 14 attempts (minutes of backoff); this one is sent with 2,
    # through the worker's broker, as the relay would publish it.
    sent = (
        await worker.jobs.send_password_reset_email.kicker()
        .with_labels(max_attempts=2)
        .kiq(email=address, requested_at=datetime.now(UTC).isoformat())
    )

    letter = await _next_dead_letter(dead_letters)
    assert (letter.kind, letter.name, letter.message_id) == ("job", SEND_RESET_EMAIL, sent.task_id)
    assert letter.queue == settings.jobs_queue
    assert letter.attempts == 2
    assert letter.last_error.startswith("EmailDeliveryFailed: ")
    assert "451" in letter.last_error
    assert letter.first_failed_at <= letter.last_failed_at
    assert smtp.data_attempts[address] == 2 * 3  # two job attempts, the sender's 3 tries each
    assert await reset_tokens_of(settings, address) == 0

    # Replayed (twice: the ops service refuses a second replay; the job copes anyway)
    # once the server takes it: one email, one token, one run recorded.
    smtp.fail_data.pop(address)
    succeeded = _metric("jobs_succeeded_total")
    for _ in range(2):
        await amqp_channel.default_exchange.publish(
            letter.replay_message(), routing_key=letter.queue
        )
    await wait_until(
        lambda: _metric("jobs_succeeded_total") - succeeded >= 2, within=20, what="both replays"
    )
    assert len(smtp.texts(address)) == 1
    assert await reset_tokens_of(settings, address) == 1
    [(runs,)] = await query(
        settings,
        "SELECT count(*) FROM inbox WHERE consumer = :job AND message_id = :id",
        job=SEND_RESET_EMAIL,
        id=uuid.UUID(sent.task_id),
    )
    assert runs == 1
