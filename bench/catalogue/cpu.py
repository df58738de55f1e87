"""CPU per request of the catalog and of its PostgreSQL backends, per catalogue case.

    .venv/bin/python -m bench.catalogue.cpu                    # every case, 5 s each
    .venv/bin/python -m bench.catalogue.cpu --seconds 10 listing filter:32

On a machine that others load, requests per second and latency say how much of
a core the catalog was given as much as what it costs; the CPU time each request
took (the catalog process, and the PostgreSQL backends its pool opened, from
``/proc/<pid>/stat``) moves far less with the load. The catalog runs as in the
bench's catalogue cases (one process on core 1, relay off, the bench database);
wrk drives each case from core 0 for one warm-up second, then ``--seconds``.
A case is ``listing``, ``product``, ``q``, ``typo``, ``filter`` or ``deep``,
optionally ``:connections`` (default 64 for the reads, 16 for the searches).
``listing-missed`` and ``product-missed`` are the two reads through the gateway
(two workers on cores 0 and 1, as in the bench) with its cache missed on every
request (each carries a query parameter of its own, as the bench's (d) and (g)
rows): their rows add the gateway's CPU per request, all its processes summed.

Every row also gives Redis's CPU per request (the ``redis-server`` process) and
the whole machine's (``/proc/stat``: every process, wrk and the kernel
included), with the rate at which both cores would be busy at that cost
(``2 cores / machine CPU per request``): the ceiling of the case on this
machine, whatever the scheduler does; and the CPU time the hypervisor gave to
others while the case ran (steal), the share of the machine it did not have.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench.catalogue.cases import (
    DEEP_POSITION,
    SHAPES,
    catalogue_environment,
    deep_cursor,
    page,
    products_url,
    start_catalog,
    start_gateway,
    wrk_uncached,
)
from bench.catalogue.database import bench_products, connect, prepare
from bench.load import Request, wrk
from bench.rss import descendants
from bench.servers import Server, ServerError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MISSED = ("listing-missed", "product-missed")
CASES = ("listing", "product", *(shape.key for shape in SHAPES), "deep", *MISSED)
READS = ("listing", "product", *MISSED)


def machine_jiffies() -> tuple[int, int]:
    """Busy and stolen clock ticks of all cores so far (``/proc/stat``'s cpu line)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def machine_seconds_since(before: tuple[int, int]) -> tuple[float, float]:
    """Busy and stolen CPU seconds of all cores since ``before`` (:func:`machine_jiffies`)."""
    busy, stolen = machine_jiffies()
    return (busy - before[0]) / CLOCK_TICKS, (stolen - before[1]) / CLOCK_TICKS


def redis_server_pids() -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _command(entry) == "redis-server"
    ]


def _command(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def catalog_backends(url: str) -> list[int]:
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'catalog'"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


def case_urls(base: str) -> dict[str, str]:
    items = page(products_url(base, {"limit": "10"}))["items"]
    assert isinstance(items, list)
    assert items
    return {
        "listing": products_url(base),
        "product": f"{base}/api/v1/products/{items[-1]['id']}",
        **{shape.key: products_url(base, shape.params) for shape in SHAPES},
    }


def gateway_processes(gateway: Server) -> list[int]:
    """The gateway's supervisor and its uvicorn workers."""
    return [gateway.pid, *descendants(gateway.pid)]


def run(cases: Sequence[str], seconds: int) -> list[str]:
    env = catalogue_environment()
    prepared = prepare(env, bench_products())
    lines = [
        "| case | conn. | req/s | p50 | p95 | catalog CPU per request | PostgreSQL CPU per "
        "request | gateway CPU per request | Redis CPU per request | machine CPU per request "
        "| both cores' ceiling | steal | catalog's share of a core | load (1 min) "
        "| not 2xx or failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    with ExitStack() as stack:
        catalog = start_catalog(stack, env, prepared.url)
        catalog.settle()
        urls = case_urls(catalog.url)
        gateway: Server | None = None
        for case in cases:
            name, _, given = case.partition(":")
            connections = int(given) if given else (64 if name in READS else 16)
            if name == "deep" and "deep" not in urls:
                urls["deep"] = products_url(
                    catalog.url, {"cursor": deep_cursor(catalog, DEEP_POSITION)}
                )
            if name in MISSED:
                if gateway is None:
                    gateway = start_gateway(stack, env, catalog)
                direct = urls[name.removesuffix("-missed")]
                request = Request(gateway.url + direct.removeprefix(catalog.url))
                load_once = wrk_uncached
            else:
                request = Request(urls[name])
                load_once = wrk
            load_once(request, connections=connections, seconds=1)  # warm-up
            backends = asyncio.run(catalog_backends(prepared.url))
            gateway_pids = gateway_processes(gateway) if name in MISSED and gateway else []
            load = os.getloadavg()[0]
            catalog_before = cpu_seconds(catalog.pid)
            pg_before = sum(cpu_seconds(pid) for pid in backends)
            gateway_before = sum(cpu_seconds(pid) for pid in gateway_pids)
            redis_pids = redis_server_pids()
            redis_before = sum(cpu_seconds(pid) for pid in redis_pids)
            machine_before = machine_jiffies()
            result = load_once(request, connections=connections, seconds=seconds)
            machine_cpu, stolen = machine_seconds_since(machine_before)
            redis_cpu = sum(cpu_seconds(pid) for pid in redis_pids) - redis_before
            catalog_cpu = cpu_seconds(catalog.pid) - catalog_before
            pg_cpu = sum(cpu_seconds(pid) for pid in backends) - pg_before
            gateway_cpu = sum(cpu_seconds(pid) for pid in gateway_pids) - gateway_before
            n = max(result.requests, 1)
            gateway_cell = f"{1000 * gateway_cpu / n:.2f} ms" if gateway_pids else "n/a"
            lines.append(
                f"| {name} | {connections} | {result.rps:,.0f} | {result.p50_us / 1000:.1f} ms "
                f"| {result.p95_us / 1000:.1f} ms | {1000 * catalog_cpu / n:.2f} ms "
                f"| {1000 * pg_cpu / n:.2f} ms | {gateway_cell} "
                f"| {1000 * redis_cpu / n:.2f} ms | {1000 * machine_cpu / n:.2f} ms "
                f"| {2 * n / max(machine_cpu, 1e-9):,.0f} req/s "
                f"| {stolen / (2 * seconds):.0%} "
                f"| {catalog_cpu / seconds:.2f} | {load:.1f} "
                # An error answers cheaply or dearly: a case with failures measures them.
                f"| {result.failures:,} |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.catalogue.cpu",
        description="CPU per request of the catalog and its PostgreSQL backends, per case.",
    )
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases if c.partition(":")[0] not in CASES]
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)}")
    try:
        print("\n".join(run(args.cases, args.seconds)))
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
