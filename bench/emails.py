"""Reset emails from the request to the mail sink: sustained rate, and latency at a steady rate.

    .venv/bin/python -m bench.emails                    # 60 s at full speed, 30 s at 50/s
    BENCH_EMAIL_SECONDS=10 BENCH_LATENCY_SECONDS=10 .venv/bin/python -m bench.emails
    BENCH_LATENCY_RATE=200 BENCH_LATENCY_SECONDS=60 .venv/bin/python -m bench.emails

The real processes: the users service (core 1), its worker (on the cores of
``BENCH_EMAIL_WORKER_CPUS``, both by default, ``BENCH_EMAIL_WORKER_PROCESSES``
processes, one by default; ``BENCH_EMAIL_WORKER_CPUS=1`` is the placement of
the first measurements, beside the users service) and the mail sink stand-in
(core 0), on the bench database and Redis db, with a job queue and
dead-letter queue of this run's own. Accounts are seeded with SQL (each may
receive 3 reset emails an hour: the contract's budget), requests go to the
users service directly (the gateway is measured elsewhere), and delivery time
is the mail sink's arrival timestamp of the email to that account.

Printed: requests/s accepted and emails/s delivered while requests arrive at
full speed for ``BENCH_EMAIL_SECONDS``, how long the backlog took to drain,
CPU seconds each process spent (and per email), then p50/p95/p99 from request
to delivery at a steady ``BENCH_LATENCY_RATE`` per second, and the rate that
phase sustained (emails ÷ time from its first request to its last delivery).

``BENCH_EMAIL_PROFILE=N`` also samples the users service, the worker (its
forked job process included) and the mail sink with ``py-spy`` for N seconds
of the full-speed phase (raw files under ``var/bench-profiles/``, summarised
after the table as ``python -m bench.profiling`` does); py-spy takes CPU of
its own, so time a run without it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import httpx

from bench.profiling import PROFILE_DIR, py_spy, summarize, tables
from bench.run import (
    PYTHON,
    ROOT,
    bench_database_url,
    common_environment,
    ephemeral_signing_key,
    migrate,
    started,
)
from bench.servers import Server, ServerError

USERS_PORT, MAIL_HTTP_PORT, MAIL_SMTP_PORT = 18101, 18125, 18126
BUDGET_PER_ACCOUNT = 3
CONCURRENCY = 32
# A bcrypt hash of nothing anyone types: seeded accounts only receive emails.
SEEDED_HASH = "$2b$04$" + "a" * 53


@dataclass(frozen=True, slots=True)
class Throughput:
    seconds: float
    requests: int
    accepted_per_second: float
    delivered_in_window: int
    delivered_per_second: float
    drained_after: float
    cpu: dict[str, float]
    load_generator_cpu: float
    shared_cpu: dict[str, float]
    load_average: tuple[float, float, float]


_TICKS = os.sysconf("SC_CLK_TCK")


def _tree_cpu(server: Server) -> float:
    """User + system CPU seconds of a server and every process under it (the worker forks)."""
    total, pending = 0.0, [server.pid]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
        pending.extend(int(child) for child in children)
    return total


def _tree_sched(server: Server) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one (the kernel's
    schedstat), over every thread of a server and of the processes under it."""
    running = waiting = 0.0
    pending = [server.pid]
    while pending:
        pid = pending.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                on_cpu, queued, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue
            running += int(on_cpu) / 1e9
            waiting += int(queued) / 1e9
        pending.extend(int(child) for child in children)
    return running, waiting


def _cpu_of_command(names: tuple[str, ...]) -> dict[int, float]:
    """CPU seconds so far of every process whose command name is one of ``names``
    (RabbitMQ's ``beam.smp``, every ``postgres`` process), by pid: shared with
    anything else running on the machine, so an upper bound of this run's share."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        if head.partition("(")[2] in names:
            fields = tail.split()
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings by the processes alive at the second
    (one that ended in between is missed, never counted negative)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


_SHARED = {"RabbitMQ (beam.smp)": ("beam.smp",), "PostgreSQL (every process)": ("postgres",)}


def _own_cpu() -> float:
    """User + system CPU seconds of this process (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pid_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def _postgres_backends(database_url: str) -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL backend connected to the bench database
    (the users service's pool, the worker's and the relay's), by pid."""
    connection = await asyncpg.connect(_plain_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return {row["pid"]: _pid_cpu(row["pid"]) for row in rows}


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed_accounts(database_url: str, count: int, tag: str) -> list[str]:
    """``count`` customer accounts, inserted in one COPY each for users and their roles."""
    emails = [f"mail-{tag}-{i}@bench.example.com" for i in range(count)]
    ids = [uuid.uuid4() for _ in emails]
    connection = await asyncpg.connect(_plain_dsn(database_url))
    try:
        await connection.copy_records_to_table(
            "users",
            records=[
                (i, e, e, SEEDED_HASH, "Bench Reader") for i, e in zip(ids, emails, strict=True)
            ],
            columns=["id", "email", "email_normalized", "password_hash", "full_name"],
        )
        await connection.copy_records_to_table(
            "user_roles", records=[(i, "customer") for i in ids], columns=["user_id", "role"]
        )
    finally:
        await connection.close()
    return emails


async def _arrivals(client: httpx.AsyncClient) -> dict[str, datetime]:
    """Recipient → arrival time of every email the mail sink holds."""
    arrivals: dict[str, datetime] = {}
    start = 0
    while True:
        page = (await client.get("/api/v1/messages", params={"start": start, "limit": 1000})).json()
        for message in page["messages"]:
            arrivals[message["To"][0]["Address"]] = datetime.fromisoformat(message["Created"])
        start += len(page["messages"])
        if not page["messages"] or start >= page["total"]:
            return arrivals


async def _count(client: httpx.AsyncClient) -> int:
    return int((await client.get("/api/v1/messages", params={"limit": 1})).json()["total"])


async def _profile(servers: list[Server], *, after: float, seconds: int, stem: str) -> list[Path]:
    """``py-spy record`` of each server (and its children: the worker forks) for
    ``seconds``, ``after`` seconds from now; the raw files, one per server."""
    await asyncio.sleep(after)
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    running = []
    for server in servers:
        out = PROFILE_DIR / f"{stem}-{server.name}.txt"
        proc = await asyncio.create_subprocess_exec(
            py_spy(), "record", "--pid", str(server.pid), "--subprocesses",
            "--duration", str(seconds), "--rate", "100", "--format", "raw", "--function",
            "--gil", "--full-filenames", "--output", str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        running.append((proc, out))
    files = []
    for proc, out in running:
        output, _ = await proc.communicate()
        if proc.returncode != 0 or not out.is_file():
            raise ServerError(f"py-spy failed (exit {proc.returncode}):\n{output.decode()}")
        files.append(out)
    return files


async def throughput(
    users: str,
    mail: str,
    emails: list[str],
    seconds: float,
    servers: list[Server],
    *,
    database_url: str,
    profile_seconds: int = 0,
) -> tuple[Throughput, list[Path]]:
    addresses = [e for e in emails for _ in range(BUDGET_PER_ACCOUNT)]
    sent = 0
    deadline = time.monotonic() + seconds
    cpu_before = {s.name: _tree_cpu(s) for s in servers}
    load_before = _own_cpu()
    shared_before = {name: _cpu_of_command(names) for name, names in _SHARED.items()}
    postgres_before = await _postgres_backends(database_url)
    profiling = (
        asyncio.create_task(
            _profile(
                servers,
                after=min(2.0, seconds / 4),
                seconds=profile_seconds,
                stem=f"emails-{time.strftime('%Y%m%d-%H%M%S')}",
            )
        )
        if profile_seconds
        else None
    )
    # aiohttp for the load: about a third of httpx's CPU per request, and the load
    # generator shares the two cores with what it measures.
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with (
        aiohttp.ClientSession(
            base_url=users,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=30),
            raise_for_status=True,
        ) as client,
        httpx.AsyncClient(base_url=mail, timeout=30) as sink,
    ):

        async def sender() -> None:
            nonlocal sent
            while time.monotonic() < deadline and sent < len(addresses):
                email = addresses[sent]
                sent += 1
                async with client.post(
                    "/api/v1/auth/password-reset/request", json={"email": email}
                ) as response:
                    await response.read()

        started_at = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        window = time.monotonic() - started_at
        delivered_in_window = await _count(sink)
        while await _count(sink) < sent and time.monotonic() - started_at < window + 300:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        drained = time.monotonic() - started_at - window
    cpu = {s.name: _tree_cpu(s) - cpu_before[s.name] for s in servers}
    load_cpu = _own_cpu() - load_before
    shared = {
        name: _spent(shared_before[name], _cpu_of_command(names)) for name, names in _SHARED.items()
    }
    postgres_after = await _postgres_backends(database_url)
    # Backends that came and went during the run are missed: the pools keep theirs.
    cpu["postgres (bench database backends)"] = _spent(postgres_before, postgres_after)
    profiles = await profiling if profiling is not None else []
    return Throughput(
        seconds=window,
        requests=sent,
        accepted_per_second=sent / window,
        delivered_in_window=delivered_in_window,
        delivered_per_second=delivered_in_window / window,
        drained_after=drained,
        cpu=cpu,
        load_generator_cpu=load_cpu,
        shared_cpu=shared,
        load_average=os.getloadavg(),
    ), profiles


@dataclass(frozen=True, slots=True)
class Steady:
    delays_ms: list[float]
    offered_seconds: float
    last_delivery_after: float
    # Per server: seconds on a CPU, seconds waiting for one, during the phase.
    sched: dict[str, tuple[float, float]]

    @property
    def sustained_per_second(self) -> float:
        """Emails delivered ÷ time from the first request to the last delivery."""
        return len(self.delays_ms) / self.last_delivery_after if self.last_delivery_after else 0.0


async def latency(
    users: str, mail: str, emails: list[str], rate: float, servers: list[Server]
) -> Steady:
    """Milliseconds from each request to its email's arrival, at a steady ``rate``/s."""
    sent_at: dict[str, datetime] = {}
    sched_before = {server.name: _tree_sched(server) for server in servers}

    async def request(client: aiohttp.ClientSession, email: str) -> None:
        async with client.post(
            "/api/v1/auth/password-reset/request", json={"email": email}
        ) as response:
            await response.read()

    async with (
        aiohttp.ClientSession(
            base_url=users, timeout=aiohttp.ClientTimeout(total=30), raise_for_status=True
        ) as client,
        httpx.AsyncClient(base_url=mail, timeout=30) as sink,
    ):
        await sink.delete("/api/v1/messages")
        tasks = []
        begin = time.monotonic()
        first = datetime.now().astimezone()
        for index, email in enumerate(emails):
            await asyncio.sleep(max(0.0, begin + index / rate - time.monotonic()))
            sent_at[email] = datetime.now().astimezone()
            tasks.append(asyncio.create_task(request(client, email)))
        offered = time.monotonic() - begin
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 60
        while await _count(sink) < len(emails) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        # Before the listing: the sink parses each message when it is first read.
        sched = {}
        for server in servers:
            (run0, wait0), (run1, wait1) = sched_before[server.name], _tree_sched(server)
            sched[server.name] = (run1 - run0, wait1 - wait0)
        arrivals = await _arrivals(sink)
    delivered = [arrivals[email] for email in sent_at if email in arrivals]
    return Steady(
        sched=sched,
        delays_ms=sorted(
            (arrivals[email] - sent).total_seconds() * 1000
            for email, sent in sent_at.items()
            if email in arrivals
        ),
        offered_seconds=offered,
        last_delivery_after=(max(delivered) - first).total_seconds() if delivered else 0.0,
    )


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(result: Throughput, steady_run: Steady, *, steady: int, rate: float) -> str:
    """The markdown table of one run."""
    when = datetime.now().astimezone()
    delays = steady_run.delays_ms
    p50, p95, p99 = (_percentile(delays, q) for q in (50, 95, 99))
    busy = result.seconds + result.drained_after
    rows = [
        f"\n### Reset emails, request to mail sink ({when:%Y-%m-%d %H:%M %Z})\n",
        "| measure | value |",
        "|---|---|",
        f"| requests at full speed ({CONCURRENCY} concurrent) | {result.requests} in "
        f"{result.seconds:.1f} s: {result.accepted_per_second:.0f}/s accepted |",
        f"| emails delivered during those {result.seconds:.0f} s | "
        f"{result.delivered_in_window}: **{result.delivered_per_second:.0f}/s** |",
        f"| backlog drained after the requests stopped | {result.drained_after:.1f} s |",
        f"| emails delivered overall (requests ÷ time to the last delivery) | "
        f"**{result.requests / busy:.0f}/s** |",
        *(
            f"| CPU seconds, {name} | {cpu:.1f} ({cpu / busy * 100:.0f} % of a core"
            f" over the {busy:.0f} s to the last delivery; "
            f"{cpu / max(result.requests, 1) * 1000:.2f} ms per email) |"
            for name, cpu in result.cpu.items()
        ),
        f"| CPU per email, these processes together | "
        f"{sum(result.cpu.values()) / max(result.requests, 1) * 1000:.2f} ms |",
        f"| CPU seconds, the load generator (aiohttp, not counted above) | "
        f"{result.load_generator_cpu:.1f} "
        f"({result.load_generator_cpu / max(result.requests, 1) * 1000:.2f} ms per request) |",
        *(
            f"| CPU seconds, {name}, shared with the machine | {cpu:.1f} "
            f"({cpu / max(result.requests, 1) * 1000:.2f} ms per email at most) |"
            for name, cpu in result.shared_cpu.items()
        ),
        "| load average (1, 5, 15 min) at the end of the full-speed phase | "
        + " / ".join(f"{load:.2f}" for load in result.load_average)
        + " |",
        f"| steady {rate:.0f}/s for {steady_run.offered_seconds:.0f} s: delivered | "
        f"{len(delays)} of {steady}, the last {steady_run.last_delivery_after:.1f} s after the "
        f"first request: **{steady_run.sustained_per_second:.0f}/s** |",
        f"| request → delivery p50 / p95 / p99 | {p50:.0f} / {p95:.0f} / {p99:.0f} ms |",
        *(
            f"| steady phase, {name}: on a CPU / runnable but waiting for one | "
            f"{running:.1f} s / {waiting:.1f} s "
            f"({running / max(len(delays), 1) * 1000:.2f} ms on a CPU per email) |"
            for name, (running, waiting) in steady_run.sched.items()
        ),
    ]
    return "\n".join(rows)


async def _delete_queues(env: dict[str, str], run: str) -> None:
    """Delete the job and dead-letter queues of this run (once its servers stopped)."""
    queue = f"users.jobs.bench-{run}"
    names = [queue, f"{queue}.delay", f"{queue}.rejected", f"emporium.dead-letters.bench-{run}"]
    connection = await aio_pika.connect(env.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    try:
        for name in names:
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass  # never declared (a run that stopped early)
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()


def main() -> int:
    seconds = float(os.environ.get("BENCH_EMAIL_SECONDS", "60"))
    latency_seconds = float(os.environ.get("BENCH_LATENCY_SECONDS", "30"))
    rate = float(os.environ.get("BENCH_LATENCY_RATE", "50"))
    profile_seconds = int(os.environ.get("BENCH_EMAIL_PROFILE", "0"))
    worker_cpus = os.environ.get("BENCH_EMAIL_WORKER_CPUS", "0,1")
    worker_processes = int(os.environ.get("BENCH_EMAIL_WORKER_PROCESSES", "1"))
    print(
        f"users on core 1, mail sink on core 0, worker ({worker_processes} process(es)) "
        f"on cores {worker_cpus}",
        file=sys.stderr,
    )
    run = uuid.uuid4().hex[:10]
    env = common_environment()
    migrate(env)
    env.update(
        USERS_PORT=str(USERS_PORT),
        USERS_BCRYPT_ROUNDS="4",
        USERS_JWT_PRIVATE_KEY=ephemeral_signing_key(),
        USERS_JOBS_QUEUE=f"users.jobs.bench-{run}",
        USERS_WORKER_METRICS_PORT="0",
        DEAD_LETTERS_QUEUE=f"emporium.dead-letters.bench-{run}",
        SMTP_PORT=str(MAIL_SMTP_PORT),
        MAILSINK_SMTP_PORT=str(MAIL_SMTP_PORT),
        MAILSINK_HTTP_PORT=str(MAIL_HTTP_PORT),
        MAILSINK_MAX_MESSAGES="200000",
        LOG_LEVEL="WARNING",
        MAILSINK_LOG_LEVEL="WARNING",
        OTEL_SDK_DISABLED=os.environ.get("OTEL_SDK_DISABLED", "false"),
    )
    # Enough accounts that no request meets the hourly budget: 800 requests/s at most.
    needed = int(max(seconds * 800, 1) // BUDGET_PER_ACCOUNT) + 1
    emails = asyncio.run(seed_accounts(bench_database_url(), needed, f"t{run}"))
    steady = asyncio.run(
        seed_accounts(bench_database_url(), int(latency_seconds * rate), f"l{run}")
    )
    with ExitStack() as stack:
        stack.callback(lambda: asyncio.run(_delete_queues(env, run)))
        mailsink = started(
            stack,
            Server("mailsink", [PYTHON, "-m", "mailsink"], cpus="0", port=MAIL_HTTP_PORT,
                   env=env, ready_path="/livez", cwd=ROOT),
        )  # fmt: skip
        users = started(
            stack,
            Server("users", [PYTHON, "-m", "users"], cpus="1", port=USERS_PORT, env=env,
                   ready_path="/health/ready", cwd=ROOT),
        )  # fmt: skip
        worker_metrics = USERS_PORT + 50
        worker = started(
            stack,
            Server("users-worker", [PYTHON, "-m", "users.worker"], cpus=worker_cpus,
                   port=worker_metrics,
                   env={**env, "USERS_WORKER_METRICS_PORT": str(worker_metrics),
                        "USERS_WORKER_PROCESSES": str(worker_processes)},
                   ready_path="/metrics", cwd=ROOT),
        )  # fmt: skip
        if mailsink is None or users is None or worker is None:
            return 1
        result, profiles = asyncio.run(
            throughput(
                users.url,
                mailsink.url,
                emails,
                seconds,
                [users, worker, mailsink],
                database_url=bench_database_url(),
                profile_seconds=profile_seconds,
            )
        )
        steady_run = asyncio.run(
            latency(users.url, mailsink.url, steady, rate, [users, worker, mailsink])
        )
    print(report(result, steady_run, steady=len(steady), rate=rate))
    for path in profiles:
        print(f"\n#### py-spy, {path.name} ({profile_seconds} s under full load)\n")
        print(tables(summarize([path]), top=25))
    return 0


if __name__ == "__main__":
    sys.exit(main())
