"""The reset email with the users app and worker as real processes: no log line of
either, even at DEBUG, carries a reset token or link; a worker SIGKILLed in the middle
of the email leaves, once a new worker has run the job again, one email accepted, one
token and one recorded run.

The app (``python -m users``, with its outbox relay) and each worker (``python -m
users.worker``: taskiq's manager process and the worker process it forks) use this
module's database, Redis database, job and dead-letter queues, and an SMTP server
of this module's own.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import psutil
import pytest
from users_testkit import (
    LINK,
    SmtpStandIn,
    children_running,
    events_named,
    process_env,
    query,
    reset_token_in,
    reset_tokens_of,
    started_worker,
    wait_until,
    worker_processes,
)

from emporium_testkit.isolation import truncate_all
from emporium_testkit.processes import ChildProcess, free_port
from users.settings import UsersSettings

PASSWORD = "reset-job-pass-1"


@pytest.fixture(scope="module")
def settings(settings: UsersSettings, smtp: SmtpStandIn) -> UsersSettings:
    return settings.model_copy(
        update={"smtp_port": smtp.port, "public_web_url": "https://shop.process.test"}
    )


@pytest.fixture(scope="module")
async def users_process(settings: UsersSettings) -> AsyncIterator[tuple[str, ChildProcess]]:
    await truncate_all(settings.database_url, keep=("roles", "permissions", "role_permissions"))
    port = free_port()
    process = ChildProcess(
        "users",
        env=process_env(
            settings, USERS_PORT=str(port), USERS_RUN_OUTBOX_RELAY="true", LOG_LEVEL="DEBUG"
        ),
    )
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(process.wait_until_ready, f"{base}/health/ready", 60.0)
    yield base, process
    process.stop()


@pytest.fixture
async def start_worker(
    settings: UsersSettings,
) -> AsyncIterator[Callable[..., Awaitable[ChildProcess]]]:
    """Starts ``python -m users.worker`` processes; each is stopped after the test."""
    started: list[ChildProcess] = []

    async def start(**env: str) -> ChildProcess:
        process = await started_worker(settings, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        await asyncio.to_thread(process.stop)


async def _register_and_request(http: httpx.AsyncClient, address: str) -> None:
    registered = await http.post(
        "/api/v1/auth/register",
        json={"email": address, "password": PASSWORD, "full_name": "Process Pat"},
    )
    assert registered.status_code == 201
    requested = await http.post("/api/v1/auth/password-reset/request", json={"email": address})
    assert requested.status_code == 202


async def test_no_log_line_of_the_app_or_the_worker_carries_a_reset_token_or_link(
    users_process: tuple[str, ChildProcess],
    start_worker: Callable[..., Awaitable[ChildProcess]],
    smtp: SmtpStandIn,
) -> None:
    base, app = users_process
    worker = await start_worker(LOG_LEVEL="DEBUG")
    address = f"logged-{uuid.uuid4().hex[:8]}@example.com"
    # More 451s than the sender's own tries: the failure and retry paths log too.
    smtp.fail_data[address] = 3
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await _register_and_request(http, address)
        [text] = await wait_until(lambda: smtp.texts(address), within=20, what="the email")
        [link] = set(LINK.findall(text))
        token = reset_token_in(text)
        weak = await http.post(
            "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "weak"}
        )
        assert weak.status_code == 422
        confirmed = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "after-logging-3"},
        )
        assert confirmed.status_code == 204
        reused = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "after-logging-4"},
        )
        assert reused.status_code == 400
    # The worker writes its line once the job's transaction committed.
    await wait_until(
        lambda: events_named(worker.output(), "password_reset_email_sent"), what="the sent line"
    )

    worker_output, app_output = worker.output(), app.output()
    # The logs were captured, at DEBUG, through the failed attempt, its retry and the send.
    assert events_named(worker_output, "job_retry_scheduled")
    assert '"level":"debug"' in worker_output
    assert '"level":"debug"' in app_output
    for output in (worker_output, app_output):
        assert token not in output
        assert link not in output
        assert "reset-password?" not in output


async def test_a_worker_killed_mid_email_leaves_one_email_one_token_and_one_run_after_a_new_one(
    users_process: tuple[str, ChildProcess],
    start_worker: Callable[..., Awaitable[ChildProcess]],
    smtp: SmtpStandIn,
    settings: UsersSettings,
) -> None:
    base, _ = users_process
    first = await start_worker()
    address = f"killed-{uuid.uuid4().hex[:8]}@example.com"
    # The server holds the first DATA to this address: the worker has sent the whole
    # email and waits for the reply, inside the job's open transaction.
    smtp.hold_data.add(address)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await _register_and_request(http, address)
        await wait_until(smtp.holding.is_set, within=20, what="the email in flight")
        # Mid-run: the token and the job's inbox row are written, not committed.
        assert await reset_tokens_of(settings, address) == 0

        # SIGKILL taskiq's manager and the worker process running the job, all at once
        # (the manager stopped first, so it cannot fork a replacement in between).
        [manager_pid] = children_running("users.worker", jobs_queue=settings.jobs_queue)
        processes = worker_processes(manager_pid)
        assert len(processes) >= 2  # the manager and its worker
        processes[0].send_signal(signal.SIGSTOP)
        for process in reversed(processes):
            process.kill()
        await asyncio.to_thread(psutil.wait_procs, processes, 10)
        first_output = first.output()
        assert events_named(first_output, "password_reset_email_sent") == []
        await wait_until(
            lambda: smtp.unacknowledged.get(address), what="the server seeing the client go"
        )
        smtp.release()

        # RabbitMQ hands the unacknowledged job to the next worker; PostgreSQL rolled
        # back the killed attempt's transaction when its connection died.
        second = await start_worker()
        await wait_until(lambda: smtp.texts(address), within=30, what="the email sent again")
        await wait_until(
            lambda: events_named(second.output(), "password_reset_email_sent"),
            what="the second worker's sent line",
        )

        # "Once", from the database's view and the SMTP server's: one delivery answered
        # 250 (the new worker's), one reset token, one inbox row for the job id. The killed
        # attempt's DATA reached the server whole but was never acknowledged (the server
        # saw the client go before it replied, ``unacknowledged``); a real provider might
        # still deliver such a message (ADR 12's window), but its token was rolled back
        # with the attempt, so its link does not work.
        [job] = await query(
            settings,
            "SELECT id FROM outbox WHERE destination = 'jobs' "
            "AND payload -> 'kwargs' ->> 'email' = :email",
            email=address,
        )
        [(runs,)] = await query(
            settings, "SELECT count(*) FROM inbox WHERE message_id = :id", id=job.id
        )
        assert runs == 1
        assert await reset_tokens_of(settings, address) == 1
        [accepted] = smtp.texts(address)
        [unacknowledged] = smtp.unacknowledged[address]
        sent_lines = events_named(second.output(), "password_reset_email_sent")
        assert [line["job_id"] for line in sent_lines] == [job.id.hex]  # the same job, again
        stale = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": reset_token_in(unacknowledged), "new_password": "never-set-5"},
        )
        assert stale.status_code == 400
        confirmed = await http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": reset_token_in(accepted), "new_password": "after-the-kill-6"},
        )
        assert confirmed.status_code == 204
