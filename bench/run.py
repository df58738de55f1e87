"""Runs every benchmark case once and prints markdown tables (see docs/performance.md).

    .venv/bin/python -m bench                       # full: 3 s warm-up, 3 runs of 10 s
    BENCH_DURATION=2 BENCH_RUNS=1 .venv/bin/python -m bench   # smoke run
    .venv/bin/python -m bench --only rss            # idle RSS in runtime-only venvs
    .venv/bin/python -m bench --only catalog        # catalogue search and reads (bench/catalogue)
    .venv/bin/python -m bench --only tracing        # the gateway cases as tracing is set up
    .venv/bin/python -m bench --profile gateway-cached   # py-spy under one case's load

Servers run on core 1 (``taskset -c 1``), wrk on core 0; the gateway, with one
worker per core, runs on both. The users service uses a database and a Redis
database of its own (``<name>_bench``, Redis db 15), so a bench never touches
development data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import profiling, rss
from bench.load import Load, Measurement, Plan, Request, Run, measure, measure_together, wrk
from bench.servers import Server, ServerError

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GATEWAY_PORT, USERS_PORT, CATALOG_PORT, ORDERS_PORT, BASELINE_PORT, PROXY_FLOOR_PORT = (
    18000,
    18001,
    18002,
    18003,
    18010,
    18011,
)
BARE_PROXY_PORT = 18012
SERVER_CPU, GATEWAY_CPUS = "1", "0,1"
GATEWAY_WORKERS = 2
USERS_CONNECTIONS, GATEWAY_CONNECTIONS = 32, 64
UNLIMITED = "10000000/minute"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_users"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NOT_MEASURED = "not measured"


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    result: Measurement | None
    note: str = ""


# --- environment -------------------------------------------------------------


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path))


def bench_database_url() -> str:
    explicit = os.environ.get("BENCH_USERS_DATABASE_URL")
    if explicit:
        return explicit
    url = os.environ.get("USERS_DATABASE_URL", DEFAULT_DATABASE_URL)
    name = urlsplit(url).path.strip("/") or "emporium_users"
    return _with_path(url, f"/{name.removesuffix('_bench')}_bench")


def bench_redis_url() -> str:
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    return _with_path(url, "/" + os.environ.get("BENCH_REDIS_DB", "15"))


def ephemeral_signing_key() -> str:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def common_environment() -> dict[str, str]:
    prefixes = ("BENCH_", "USERS_", "GATEWAY_", "RATE_LIMIT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        REDIS_URL=bench_redis_url(),
        USERS_DATABASE_URL=bench_database_url(),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    """Create the bench database if missing and migrate it, as ``make migrate`` does."""
    done = subprocess.run(  # noqa: S603 - our own argv
        [PYTHON, str(ROOT / "scripts" / "migrate.py"), "users"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
        done.check_returncode()


def users_setting(env: dict[str, str], name: str) -> str:
    """A setting as the users service will read it from ``env``."""
    code = f"from users.settings import UsersSettings; print(UsersSettings().{name})"
    done = subprocess.run(  # noqa: S603 - our own argv
        [PYTHON, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def gateway_importable(env: dict[str, str]) -> bool:
    done = subprocess.run(  # noqa: S603 - our own argv
        [PYTHON, "-c", "import gateway.main"], env=env, cwd=ROOT, capture_output=True, check=False
    )
    return done.returncode == 0


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    described = (
        f"{os.cpu_count()} cores ({model}), {mem_kib / 1024**2:.0f} GiB, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )
    if shutil.which("wrk") is None:
        return described
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
    return f"{described}, {version.stdout.split(' Copyright')[0].strip()}"


# --- servers -----------------------------------------------------------------


def uvicorn_server(
    name: str,
    app: str,
    port: int,
    env: dict[str, str],
    ready: str,
    *,
    cpus: str = SERVER_CPU,
    workers: int = 1,
) -> Server:
    """A bench baseline (bare Starlette and the like) on uvicorn with uvloop and httptools."""
    argv = [
        PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]  # fmt: skip
    return Server(name, argv, cpus=cpus, port=port, env=env, ready_path=ready)


def started(stack: ExitStack, server: Server, *, required: bool = True) -> Server | None:
    """Start ``server`` and have ``stack`` stop it; None (or an error) if it is not ready."""
    stack.callback(server.stop)
    server.start()
    if server.wait_ready():
        return server
    message = f"{server.name} did not become ready:\n{server.log_tail()}"
    if required:
        raise ServerError(message)
    print(message, file=sys.stderr)
    server.stop()
    return None


@dataclass(frozen=True, slots=True)
class BenchUser:
    email: str
    password: str
    token: str
    me_body: bytes


def create_bench_user(users_url: str) -> BenchUser:
    """Register and log in a fresh account through the API; a unique email per run."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    password = "bench-password-" + uuid.uuid4().hex[:8] + "1"
    with httpx.Client(base_url=users_url, timeout=30) as client:
        client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": password, "full_name": "Bench User"},
        ).raise_for_status()
        login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        login.raise_for_status()
        token = str(login.json()["access_token"])
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        me.raise_for_status()
    return BenchUser(email=email, password=password, token=token, me_body=me.content)


def expect_cached(request: Request, attempts: int = 20) -> None:
    """A request answered from the gateway's cache (``X-Cache: HIT``), asked until it is.

    Right after start-up the gateway's cache listener may still connect to
    RabbitMQ, and it empties the cache when it does, so the first stored page
    can be dropped: the next request stores it again.
    """
    for _ in range(attempts - 1):
        try:
            expect_ok(request, ("x-cache", "HIT"))
            return
        except ServerError:
            time.sleep(0.5)
    expect_ok(request, ("x-cache", "HIT"))


def expect_ok(request: Request, header: tuple[str, str] | None = None) -> None:
    """One request before the load: it must answer 2xx (and carry ``header`` if given)."""
    headers = {"Authorization": f"Bearer {request.token}"} if request.token else {}
    if request.body:
        headers["Content-Type"] = "application/json"
    response = httpx.request(
        request.method, request.url, content=request.body, headers=headers, timeout=30
    )
    if not response.is_success:
        raise ServerError(f"{request.method} {request.url} answered {response.status_code}")
    if header and response.headers.get(header[0]) != header[1]:
        raise ServerError(f"{request.url} did not answer {header[0]}: {header[1]}")


# --- tables ------------------------------------------------------------------


def ratio(numerator: Measurement | None, denominator: Measurement | None) -> float | None:
    if numerator is None or denominator is None or denominator.rps == 0:
        return None
    return numerator.rps / denominator.rps


def plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def verdict(value: float | None, aim: float) -> str:
    if value is None:
        return NOT_MEASURED
    return f"**{value:.2f}** ({'meets' if value >= aim else 'misses'} the aim ≥ {aim})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def load_table(rows: Sequence[Row]) -> str:
    cells = []
    for row in rows:
        m = row.result
        if m is None or m.requests == 0:
            what = NOT_MEASURED if m is None else "no request completed"
            cells.append([row.case, what, "", "", "", "", row.note])
            continue
        failures = f"{m.failures} of {m.requests}" if m.failures else "0"
        rps = f"{m.rps:,.0f}" if m.rps >= 100 else f"{m.rps:.1f}"
        cells.append([
            row.case, rps, f"{m.p50_ms:.2f} ms", f"{m.p95_ms:.2f} ms",
            f"{m.p99_ms:.2f} ms", failures, row.note,
        ])  # fmt: skip
    return table(["case", "req/s", "p50", "p95", "p99", "errors", "note"], cells)


def mb(mib: float) -> str:
    return f"{mib:.1f} MiB ({mib * 1.048576:.1f} MB)"


# --- the run -----------------------------------------------------------------


def users_environment(env: dict[str, str], port: int = USERS_PORT) -> dict[str, str]:
    return {
        **env,
        "USERS_HOST": "127.0.0.1",
        "USERS_PORT": str(port),
        "USERS_JWT_PRIVATE_KEY": ephemeral_signing_key(),
        "USERS_RUN_OUTBOX_RELAY": "false",
        # 32 logins at once to one account: its failure budget (5 in flight by
        # default) would answer most of them 429 before bcrypt ran.
        "RATE_LIMIT_LOGIN_FAILURES": UNLIMITED,
    }


def start_users(stack: ExitStack, users_env: dict[str, str]) -> Server:
    """Users as ``users_env`` says (its ``USERS_PORT``: :func:`users_environment`)."""
    users = started(stack, Server(
        "users", [PYTHON, "-m", "users"], cpus=SERVER_CPU, port=int(users_env["USERS_PORT"]),
        env=users_env, ready_path="/health/ready",
    ))  # fmt: skip
    assert users is not None
    return users


def start_gateway(
    stack: ExitStack,
    env: dict[str, str],
    users: Server,
    *,
    port: int = GATEWAY_PORT,
    catalog_stub: bool = True,
) -> Server | None:
    """The gateway (2 workers) in front of ``users`` and, unless ``catalog_stub`` is False
    (it runs already), the catalogue stub; None if the gateway did not become ready."""
    if catalog_stub:
        started(stack, uvicorn_server(
            "catalog-stub", "bench.baselines.catalog_stub:app", CATALOG_PORT, env,
            "/health/ready",
        ))  # fmt: skip
    metrics_dir = tempfile.mkdtemp(prefix="bench-gateway-metrics-")
    stack.callback(shutil.rmtree, metrics_dir, True)
    gateway_env = {
        **env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": str(GATEWAY_WORKERS),
        "GATEWAY_USERS_URL": users.url,
        "GATEWAY_CATALOG_URL": f"http://127.0.0.1:{CATALOG_PORT}",
        "GATEWAY_ORDERS_URL": f"http://127.0.0.1:{ORDERS_PORT}",  # nothing there
        "GATEWAY_REQUIRED_UPSTREAMS": "users",
        "GATEWAY_CACHE_TTL_SECONDS": "3600",
        "RATE_LIMIT_ANONYMOUS": UNLIMITED,
        "RATE_LIMIT_USER": UNLIMITED,
        "RATE_LIMIT_AUTH": UNLIMITED,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    return started(stack, Server(
        "gateway", [PYTHON, "-m", "gateway"], cpus=GATEWAY_CPUS, port=port,
        env=gateway_env, ready_path="/health/ready",
    ), required=False)  # fmt: skip


def start_proxy_floor(
    stack: ExitStack, env: dict[str, str], users: Server, *, with_redis: bool = True
) -> Server:
    """Bare Starlette proxying to ``users``, laid out as the gateway; ``with_redis``:
    after one Redis ``INCR`` (the floor of a gateway that counts every request)."""
    proxy = started(stack, uvicorn_server(
        "proxy-floor" if with_redis else "bare-proxy", "bench.baselines.proxy_app:app",
        PROXY_FLOOR_PORT if with_redis else BARE_PROXY_PORT,
        {**env, "BENCH_UPSTREAM_URL": users.url, "BENCH_PROXY_REDIS": "1" if with_redis else "0",
         "BENCH_REDIS_URL": bench_redis_url()},
        "/.well-known/jwks.json", cpus=GATEWAY_CPUS, workers=GATEWAY_WORKERS,
    ))  # fmt: skip
    assert proxy is not None
    return proxy


def run(plan: Plan) -> str:
    env = common_environment()
    migrate(env)
    users_env = users_environment(env)
    bcrypt_rounds = users_setting(users_env, "bcrypt_rounds")
    out: list[str] = []

    with ExitStack() as stack:
        users = start_users(stack, users_env)
        users.settle()
        rss_idle = users.rss_mib()
        account = create_bench_user(users.url)

        baseline = started(stack, uvicorn_server(
            "baseline", "bench.baselines.starlette_app:app", BASELINE_PORT,
            {**env, "BENCH_ME_BODY": account.me_body.decode(),
             "BENCH_REDIS_URL": bench_redis_url()}, "/hello",
        ))  # fmt: skip
        assert baseline is not None
        me = Request(users.url + "/api/v1/users/me", token=account.token)
        login = Request(
            users.url + "/api/v1/auth/login",
            method="POST",
            body=json.dumps({"email": account.email, "password": account.password}),
        )
        expect_ok(me)
        expect_ok(login)
        ceiling_me, users_me = measure_together(
            [Load(Request(baseline.url + "/me"), USERS_CONNECTIONS),
             Load(me, USERS_CONNECTIONS, users.settle)],
            plan,
        )  # fmt: skip
        users_login = measure(login, connections=USERS_CONNECTIONS, plan=plan, settle=users.settle)
        gateway_rows = run_gateway(stack, env, users, baseline, account, plan)
        baseline.stop()
        users.settle(timeout=60)
        rss_loaded = users.rss_mib()

    me_ratio = ratio(users_me, ceiling_me)
    users_rows = [
        Row("(1) bare Starlette, same JSON as /users/me (ceiling)", ceiling_me,
            f"{len(account.me_body)}-byte body"),
        Row("(2) users `GET /api/v1/users/me`, bearer token", users_me,
            f"ratio to (1), runs interleaved: {verdict(me_ratio, 0.5)}"),
        Row("(3) users `POST /api/v1/auth/login`", users_login,
            f"bcrypt cost {bcrypt_rounds} (USERS_BCRYPT_ROUNDS unset: the default), one core; "
            "latencies of the logins completed within each run"),
    ]  # fmt: skip
    out.append(f"### Users service (issue #3): {USERS_CONNECTIONS} connections\n")
    out.append(load_table(users_rows))
    out.append("")
    out.append(table(
        ["users process", "VmRSS", "aim"],
        [["(4) idle, after start-up", mb(rss_idle), "≤ 120 MB"],
         ["(4) idle, after the load of (2), (3) and the gateway cases", mb(rss_loaded),
          "≤ 120 MB"]],
    ))  # fmt: skip
    out.append("")
    out.append(f"### Gateway (issue #4): {GATEWAY_CONNECTIONS} connections\n")
    out.append(gateway_rows)
    return "\n".join(out)


def run_gateway(
    stack: ExitStack,
    env: dict[str, str],
    users: Server,
    baseline: Server,
    account: BenchUser,
    plan: Plan,
) -> str:
    """Each gateway case with what it is compared to, their runs interleaved."""
    hello, redis_floor = Request(baseline.url + "/hello"), Request(baseline.url + "/redis")
    me_direct = Request(users.url + "/api/v1/users/me", token=account.token)
    jwks_direct = Request(users.url + "/.well-known/jwks.json")
    if not gateway_importable(env):
        reason = "gateway not available (`import gateway` fails)"
        gateway = None
    else:
        gateway = start_gateway(stack, env, users)
        reason = "gateway did not become ready"
    proxy = start_proxy_floor(stack, env, users)
    bare = start_proxy_floor(stack, env, users, with_redis=False)
    through: dict[str, Request] = {}
    if gateway is not None:
        through = {
            "me": Request(gateway.url + "/api/v1/users/me", token=account.token),
            "products": Request(gateway.url + "/api/v1/products"),
            "jwks": Request(gateway.url + "/.well-known/jwks.json"),
        }
        expect_ok(through["me"])
        expect_ok(through["jwks"])
        expect_ok(through["products"])  # a miss: fetched from the stub and stored
        expect_cached(through["products"])
    me_floor = Request(proxy.url + "/api/v1/users/me", token=account.token)
    jwks_floor = Request(proxy.url + "/.well-known/jwks.json")
    me_bare = Request(bare.url + "/api/v1/users/me", token=account.token)
    jwks_bare = Request(bare.url + "/.well-known/jwks.json")
    for request in (me_floor, jwks_floor, me_bare, jwks_bare):
        expect_ok(request)

    def group(direct: Request, case: str, *floors: Request) -> list[Measurement | None]:
        asked = [direct, *([through[case]] if case in through else []), *floors]
        loads = [Load(request, GATEWAY_CONNECTIONS, users.settle) for request in asked]
        measured: list[Measurement | None] = list(measure_together(loads, plan))
        if case not in through:
            measured.insert(1, None)
        return measured

    direct_me, me_through, me_floor_m, me_bare_m = group(me_direct, "me", me_floor, me_bare)
    ceiling, cached, floor_g = group(hello, "products", redis_floor)
    direct_jwks, jwks_through, jwks_floor_m, jwks_bare_m = group(
        jwks_direct, "jwks", jwks_floor, jwks_bare
    )

    gw = f"gateway, {GATEWAY_WORKERS} workers on cores {GATEWAY_CPUS}"
    floor = f"bare Starlette, {GATEWAY_WORKERS} workers on cores {GATEWAY_CPUS}"
    rows = [
        Row("(a) users `GET /api/v1/users/me` directly, bearer token", direct_me,
            "users on core 1"),
        Row("(b) the same through the gateway", me_through,
            f"{gw}; JWT check; revocation read and per-user limit in one script call; "
            f"(b)/(a): {verdict(ratio(me_through, direct_me), 0.8)}, "
            f"(b)/(h): {plain(ratio(me_through, me_floor_m))}" if me_through else reason),
        Row("(h) the same through a bare proxy after one Redis `INCR` (the floor of (b))",
            me_floor_m,
            f"{floor}; aiohttp, the Authorization header only, nothing checked or logged; "
            f"(h)/(a): {plain(ratio(me_floor_m, direct_me))}"),
        Row("(j) the same through a bare proxy that only forwards (no Redis at all)",
            me_bare_m,
            f"{floor}; as (h) without the `INCR`; (j)/(a): {plain(ratio(me_bare_m, direct_me))}"),
        Row("(c) gateway `GET /api/v1/products`, from its Redis cache", cached,
            f"{gw}; X-Cache: HIT; one Redis round trip (the rate limit); "
            f"(c)/(d): {verdict(ratio(cached, ceiling), 0.4)}, "
            f"(c)/(g): {plain(ratio(cached, floor_g))}"
            if cached else reason),
        Row("(d) bare Starlette hello (ceiling)", ceiling, "core 1"),
        Row("(g) bare Starlette hello after one Redis `INCR` (the floor of (c))", floor_g,
            f"core 1; (g)/(d): {plain(ratio(floor_g, ceiling))}"),
        Row("(e) users `GET /.well-known/jwks.json` directly", direct_jwks,
            "users on core 1; worst case for the gateway: a trivial upstream"),
        Row("(f) the same through the gateway (worst case)", jwks_through,
            f"{gw}; anonymous limit; the gateway's fixed cost dominates; "
            f"(f)/(e): {verdict(ratio(jwks_through, direct_jwks), 0.7)}, "
            f"(f)/(i): {plain(ratio(jwks_through, jwks_floor_m))}"
            if jwks_through else reason),
        Row("(i) the same through the bare proxy of (h) (the floor of (f))", jwks_floor_m,
            f"{floor}; (i)/(e): {plain(ratio(jwks_floor_m, direct_jwks))}"),
        Row("(k) the same through the bare proxy of (j), no Redis at all", jwks_bare_m,
            f"{floor}; (k)/(e): {plain(ratio(jwks_bare_m, direct_jwks))}"),
    ]  # fmt: skip
    return load_table(rows)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@dataclass(frozen=True, slots=True)
class ProfileCase:
    """A bench case whose load is run while py-spy samples ``target``."""

    what: str
    target: str  # "gateway" or "users"
    path: str
    authenticated: bool = False
    cached: bool = False  # must be served from the gateway's cache


PROFILE_CASES = {
    "gateway-cached": ProfileCase(
        "(c) gateway `GET /api/v1/products`, from its cache", "gateway", "/api/v1/products",
        cached=True,
    ),
    "gateway-me": ProfileCase(
        "(b) `GET /api/v1/users/me` through the gateway, bearer token", "gateway",
        "/api/v1/users/me", authenticated=True,
    ),
    "gateway-jwks": ProfileCase(
        "(f) `GET /.well-known/jwks.json` through the gateway", "gateway",
        "/.well-known/jwks.json",
    ),
    "users-me": ProfileCase(
        "(2) users `GET /api/v1/users/me` directly, bearer token", "users", "/api/v1/users/me",
        authenticated=True,
    ),
}  # fmt: skip


def worker_pids(server: Server) -> list[int]:
    """The processes that serve requests: uvicorn's spawned workers, else the server itself."""
    workers = [
        pid
        for pid in rss.descendants(server.pid)
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    return workers or [server.pid]


def run_profile(name: str, plan: Plan, *, seconds: int, native: bool, top: int) -> str:
    case = PROFILE_CASES[name]
    env = common_environment()
    migrate(env)
    connections = GATEWAY_CONNECTIONS if case.target == "gateway" else USERS_CONNECTIONS
    load_seconds = plan.warmup_seconds + seconds + 2
    runs: list[Run] = []
    with ExitStack() as stack:
        users = start_users(stack, users_environment(env))
        users.settle()
        account = create_bench_user(users.url)
        target = users
        if case.target == "gateway":
            gateway = start_gateway(stack, env, users)
            if gateway is None:
                raise ServerError("gateway did not become ready")
            target = gateway
        request = Request(
            target.url + case.path, token=account.token if case.authenticated else None
        )
        expect_ok(request)
        if case.cached:
            expect_cached(request)
        pids = worker_pids(target)
        load = threading.Thread(
            target=lambda: runs.append(wrk(request, connections=connections, seconds=load_seconds)),
            daemon=True,
        )
        load.start()
        time.sleep(plan.warmup_seconds)
        stem = f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        files = profiling.record(pids, seconds=seconds, stem=stem, native=native)
        load.join(timeout=load_seconds + 90)
    summary = profiling.summarize(files)
    load_line = "wrk printed no result"
    if runs:
        failed = runs[0].failures
        load_line = f"wrk: {runs[0].requests:,} requests, {failed} not 2xx or failed"
    saved = ", ".join(f"`{f.relative_to(ROOT)}`" for f in files)
    return (
        f"### Profile `{name}`: {case.what}\n\n"
        f"py-spy {'--native ' if native else ''}--gil at {profiling.RATE_HZ} Hz for {seconds} s "
        f"on {len(pids)} {case.target} process(es) (pids {', '.join(map(str, pids))}), "
        f"after {plan.warmup_seconds} s of load; {connections} connections; {load_line} "
        f"(rates under py-spy are not throughput figures). Raw stacks: {saved}."
        + (
            ""
            if native
            else " Without --native, time in C (the garbage collector, socket writes) counts "
            "as the Python function that was running."
        )
        + "\n\n"
        + profiling.tables(summary, top=top)
    )


def run_rss() -> str:
    env = common_environment()
    migrate(env)
    table_text = rss.measure_rss(env, ephemeral_signing_key())
    database = urlsplit(bench_database_url()).path.strip("/")
    return (
        "### Idle RSS in runtime-only environments (issue #12)\n\n"
        + table_text
        + f"\n\nEach venv: `python -m venv`, then `pip install -c constraints.txt libs/kit "
        f"<service>` (mailsink: its directory alone), not editable, no requirements-dev.txt, no "
        f"test extras. Started as `python -m <service>` from an empty directory on free ports; "
        f"VmRSS, RssAnon and Pss from /proc after `/health/live` answered and "
        f"{rss.IDLE_SECONDS:.0f} s of idle. Users on `{database}` with its outbox relay off and "
        f"a reset-mailer queue of its own (deleted afterwards), SMTP to the mailsink; the "
        f"gateways in front of that users; the catalog on the catalogue bench's database "
        f"(migrated when needed, not seeded) with its outbox relay off, its JWKS from that "
        f"users. Modules: `len(sys.modules)` once idle.\n"
    )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Emporium benchmarks (docs/performance.md)."
    )
    parser.add_argument(
        "--only",
        choices=("load", "tracing", "rss", "catalog"),
        help="load: the throughput tables; tracing: the load cases with tracing off, ids only "
        "and exported; rss: idle RSS in runtime-only venvs; catalog: the catalogue's search and "
        "read cases on seeded data, BENCH_CATALOG_PRODUCTS (default 100000) (default: all four)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILE_CASES),
        help="instead of the tables: py-spy profile of one case's server under its load",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=int(os.environ.get("BENCH_PROFILE_SECONDS", "10")),
        help="seconds py-spy samples (--profile; default 10, BENCH_PROFILE_SECONDS)",
    )
    parser.add_argument("--native", action="store_true", help="py-spy --native (--profile)")
    parser.add_argument("--top", type=int, default=15, help="functions per profile table")
    args = parser.parse_args(argv)
    if args.profile and args.only:
        parser.error("--profile and --only are exclusive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    needed = ("taskset",) if args.only == "rss" else ("wrk", "taskset")
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        print(f"error: {', '.join(missing)} not found (bench/run.sh installs wrk)", file=sys.stderr)
        return 2
    plan = Plan.from_environment()
    load_at_start = os.getloadavg()[0]  # other work on the machine shows here
    header = f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n"
    if args.only != "rss" and not args.profile:
        header += (
            f"wrk: 1 thread on core 0; {plan.warmup_seconds} s warm-up, then the median of "
            f"{plan.runs} run(s) of {plan.duration_seconds} s. Servers: uvicorn (uvloop, "
            f"httptools), one worker on core 1 unless noted.\n"
        )
    print(header, flush=True)
    try:
        if args.profile:
            print(run_profile(args.profile, plan, seconds=args.seconds, native=args.native,
                              top=args.top))  # fmt: skip
        if args.only in (None, "load") and not args.profile:
            print(run(plan))
            print(notes())
        if args.only in (None, "tracing") and not args.profile:
            from bench import tracing  # imports this module

            print(tracing.run(plan), flush=True)
        if args.only in (None, "rss") and not args.profile:
            print(run_rss(), flush=True)
        if args.only in (None, "catalog") and not args.profile:
            from bench.catalogue import cases  # imports this module

            print(cases.run(plan), flush=True)
    except (ServerError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    load_at_end = os.getloadavg()[0]
    print(f"Load average (1 min): {load_at_start:.2f} at the start, {load_at_end:.2f} at the end.")
    return 0


def notes() -> str:
    database = urlsplit(bench_database_url()).path.strip("/")
    redis_db = urlsplit(bench_redis_url()).path.strip("/")
    return f"""
Notes: every server runs from this checkout. Users has a database of its own
(`{database}`) and Redis db {redis_db} (shared with the gateway), an ephemeral signing key,
and its outbox relay off (no events reach RabbitMQ); services log at their defaults (one
JSON access line per request). The gateway's rate limits are raised for the run
(RATE_LIMIT_ANONYMOUS, RATE_LIMIT_USER and RATE_LIMIT_AUTH = {UNLIMITED}) and its cache
TTL to an hour, so (c) is served from Redis; its catalogue upstream is a stub
(bench/baselines/catalog_stub.py). Login is measured directly on users: the gateway's
auth limit would throttle it; users' own login budget (RATE_LIMIT_LOGIN_FAILURES) is
raised to {UNLIMITED} for the same reason.
"""
