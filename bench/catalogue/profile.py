"""py-spy profiles of the catalog under one catalogue case's load, on seeded data.

    .venv/bin/python -m bench.catalogue.profile catalog-listing
    .venv/bin/python -m bench.catalogue.profile catalog-product --seconds 10 --native
    .venv/bin/python -m bench.catalogue.profile gateway-product-missed

The catalog runs as in the bench's catalogue cases (one uvicorn process on
core 1, the bench database ``emporium_catalog_bench_<size>``, relay off), wrk
drives the case from core 0, and after ``BENCH_WARMUP`` seconds of load
``py-spy record --gil`` samples the catalog (``bench.profiling``, as ``python
-m bench --profile`` does for the gateway and users). Prints the summary tables
(own and total time, own time by package) as markdown; the raw stacks are kept
under ``var/bench-profiles/``. The ``gateway-*-missed`` cases sample the gateway's
workers instead (two, on cores 0 and 1, as in the bench's (d) and (g) rows),
with the catalog behind them and the gateway's cache missed on every request.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import profiling
from bench.catalogue.cases import (
    SHAPES,
    catalogue_environment,
    deep_cursor,
    page,
    products_url,
    start_catalog,
    start_gateway,
    wrk_uncached,
)
from bench.catalogue.database import bench_products, prepare
from bench.load import Plan, Request, Run, wrk
from bench.run import GATEWAY_CONNECTIONS, ROOT, expect_ok, worker_pids
from bench.servers import Server, ServerError


@dataclass(frozen=True, slots=True)
class CatalogCase:
    what: str
    connections: int


SEARCH_CONNECTIONS = 16
CASES = {
    "catalog-listing": CatalogCase("(c) `GET /api/v1/products` directly", GATEWAY_CONNECTIONS),
    "catalog-product": CatalogCase("(f) `GET /api/v1/products/{id}` directly", GATEWAY_CONNECTIONS),
    **{f"catalog-{shape.key}": CatalogCase(shape.what, SEARCH_CONNECTIONS) for shape in SHAPES},
    "catalog-deep": CatalogCase("deep page through its cursor", SEARCH_CONNECTIONS),
    "gateway-listing-missed": CatalogCase(
        "(d) `GET /api/v1/products` through the gateway, cache missed", GATEWAY_CONNECTIONS
    ),
    "gateway-product-missed": CatalogCase(
        "(g) `GET /api/v1/products/{id}` through the gateway, cache missed", GATEWAY_CONNECTIONS
    ),
}


def case_url(name: str, catalog: Server) -> str:
    if name.startswith("gateway-"):
        return case_url(f"catalog-{name.split('-')[1]}", catalog)
    if name == "catalog-listing":
        return products_url(catalog.url)
    if name == "catalog-product":
        items = page(products_url(catalog.url, {"limit": "10"}))["items"]
        assert isinstance(items, list)
        assert items
        return f"{catalog.url}/api/v1/products/{items[-1]['id']}"
    if name == "catalog-deep":
        from bench.catalogue.cases import DEEP_POSITION

        return products_url(catalog.url, {"cursor": deep_cursor(catalog, DEEP_POSITION)})
    shape = next(s for s in SHAPES if f"catalog-{s.key}" == name)
    return products_url(catalog.url, shape.params)


def run_profile(
    name: str, plan: Plan, *, seconds: int, native: bool, top: int, sample: str = "gateway"
) -> str:
    case = CASES[name]
    env = catalogue_environment()
    prepared = prepare(env, bench_products())
    load_seconds = plan.warmup_seconds + seconds + 2
    runs: list[Run] = []
    with ExitStack() as stack:
        catalog = start_catalog(stack, env, prepared.url)
        catalog.settle()
        request = Request(case_url(name, catalog))
        pids = [catalog.pid]
        load_once = wrk
        if name.startswith("gateway-"):
            gateway = start_gateway(stack, env, catalog)
            request = Request(gateway.url + request.url.removeprefix(catalog.url))
            if sample == "gateway":
                pids = worker_pids(gateway)
            load_once = wrk_uncached
        expect_ok(request)
        load = threading.Thread(
            target=lambda: runs.append(
                load_once(request, connections=case.connections, seconds=load_seconds)
            ),
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
        load_line = (
            f"wrk: {runs[0].requests:,} requests ({runs[0].rps:,.0f}/s under py-spy), "
            f"{failed} not 2xx or failed"
        )
    through = name.startswith("gateway-")
    sampled = "the gateway's workers" if through and sample == "gateway" else "the catalog"
    saved = ", ".join(f"`{f.relative_to(ROOT)}`" for f in files)
    return (
        f"### Profile `{name}`: {case.what}\n\n"
        f"py-spy {'--native ' if native else ''}--gil at {profiling.RATE_HZ} Hz for {seconds} s "
        f"on {sampled} "
        f"(the catalog one process on core 1, {prepared.products:,} products), after "
        f"{plan.warmup_seconds} s of load; {case.connections} connections; {load_line} "
        f"(rates under py-spy are not throughput figures). Raw stacks: {saved}.\n\n"
        + profiling.tables(summary, top=top)
    )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.catalogue.profile",
        description="py-spy profile of the catalog under one catalogue case's load.",
    )
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--seconds", type=int, default=10, help="seconds py-spy samples")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--top", type=int, default=15, help="functions per table")
    parser.add_argument(
        "--sample",
        choices=("gateway", "catalog"),
        default="gateway",
        help="whose processes a gateway-* case samples (default: the gateway's workers)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        print(
            run_profile(
                args.case,
                Plan.from_environment(),
                seconds=args.seconds,
                native=args.native,
                top=args.top,
                sample=args.sample,
            )
        )
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
