"""CPU per request of the gateway's workers, per gateway case, beside bare Starlette's.

    .venv/bin/python -m bench.gateway_cpu                 # every case, 10 s each
    .venv/bin/python -m bench.gateway_cpu --seconds 5 cached jwks

On a machine that others load, requests per second say how much of a core a
server was given as much as what it costs; the CPU time per request (from
``/proc/<pid>/stat`` of every worker) moves far less. The servers run as in
``python -m bench --only load`` (the gateway's 2 workers on cores 0 and 1, users
and the baselines on core 1, wrk on core 0, 64 connections). Cases: ``hello``
and ``redis`` (bare Starlette, and after one Redis ``INCR``), ``cached`` (a
page from the gateway's cache), ``jwks`` (a trivial upstream through the
gateway, the users process's CPU beside it) and ``me`` (``/users/me`` through
the gateway with a bearer token); ``jwks-direct`` and ``me-direct`` are the same
two on users directly. Every row adds Redis's CPU per request, the whole
machine's (``/proc/stat``) with both cores' ceiling at that cost, and the steal
(see :mod:`bench.catalogue.cpu`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack

from bench.catalogue.cpu import (
    cpu_seconds,
    machine_jiffies,
    machine_seconds_since,
    redis_server_pids,
)
from bench.load import Request, wrk
from bench.run import (
    BASELINE_PORT,
    GATEWAY_CONNECTIONS,
    bench_redis_url,
    common_environment,
    create_bench_user,
    expect_cached,
    expect_ok,
    migrate,
    start_gateway,
    start_users,
    started,
    users_environment,
    uvicorn_server,
    worker_pids,
)
from bench.servers import Server, ServerError

CASES = ("hello", "redis", "cached", "jwks", "me", "jwks-direct", "me-direct")


def _measure(
    name: str, request: Request, servers: Sequence[tuple[str, list[int]]], seconds: int
) -> str:
    wrk(request, connections=GATEWAY_CONNECTIONS, seconds=1)  # warm-up
    load = os.getloadavg()[0]
    servers = [*servers, ("Redis", redis_server_pids())]
    before = [sum(cpu_seconds(pid) for pid in pids) for _, pids in servers]
    machine_before = machine_jiffies()
    result = wrk(request, connections=GATEWAY_CONNECTIONS, seconds=seconds)
    machine, stolen = machine_seconds_since(machine_before)
    spent = [
        sum(cpu_seconds(pid) for pid in pids) - start
        for (_, pids), start in zip(servers, before, strict=True)
    ]
    n = max(result.requests, 1)
    per_request = ", ".join(
        f"{label} {1_000_000 * cpu / n:.0f} µs"
        for (label, _), cpu in zip(servers, spent, strict=True)
    )
    failed = result.failures
    return (
        f"| {name} | {result.rps:,.0f} | {result.p95_us / 1000:.1f} ms | {per_request} "
        f"| {1_000_000 * machine / n:.0f} µs | {2 * n / max(machine, 1e-9):,.0f} req/s "
        f"| {stolen / (2 * seconds):.0%} | {failed} | {load:.1f} |"
    )


def run(cases: Sequence[str], seconds: int) -> list[str]:
    env = common_environment()
    migrate(env)
    lines = [
        "| case | req/s | p95 | CPU per request | machine CPU per request | both cores' "
        "ceiling | steal | not 2xx or failed | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with ExitStack() as stack:
        if {"hello", "redis"} & set(cases):
            baseline = started(stack, uvicorn_server(
                "baseline", "bench.baselines.starlette_app:app", BASELINE_PORT,
                {**env, "BENCH_REDIS_URL": bench_redis_url()}, "/hello",
            ))  # fmt: skip
            assert baseline is not None
            for name in ("hello", "redis"):
                if name in cases:
                    request = Request(f"{baseline.url}/{name}")
                    lines.append(_measure(name, request, [("baseline", [baseline.pid])], seconds))
            baseline.stop()
        through = [name for name in cases if name in CASES[2:]]
        if not through:
            return lines
        users = start_users(stack, users_environment(env))
        users.settle()
        account = create_bench_user(users.url)
        gateway: Server | None = start_gateway(stack, env, users)
        if gateway is None:
            raise ServerError("gateway did not become ready")
        servers = [("gateway", worker_pids(gateway)), ("users", [users.pid])]
        paths = {
            "cached": Request(gateway.url + "/api/v1/products"),
            "jwks": Request(gateway.url + "/.well-known/jwks.json"),
            "me": Request(gateway.url + "/api/v1/users/me", token=account.token),
            "jwks-direct": Request(users.url + "/.well-known/jwks.json"),
            "me-direct": Request(users.url + "/api/v1/users/me", token=account.token),
        }
        for name in through:
            request = paths[name]
            expect_ok(request)
            if name == "cached":
                expect_cached(request)
            measured = servers if not name.endswith("-direct") else servers[1:]
            lines.append(_measure(name, request, measured, seconds))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_cpu", description=__doc__)
    parser.add_argument("cases", nargs="*", metavar="case", help=f"any of {', '.join(CASES)}")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    print("\n".join(run(args.cases or CASES, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
