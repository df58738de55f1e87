"""The catalogue's bench cases (issue #14), on a seeded catalogue (``make seed``'s data).

Search latency, the catalog process alone (one uvicorn worker on core 1, wrk
on core 0), at 1 and 16 connections:

* ``q`` search (full text, ranked), a typo search (trigram word similarity),
  a category + price range + attribute filter, and a deep page (the page after
  the 10,000th product of the newest-first listing, through its cursor).

Read throughput at 64 connections, each beside the same run's baselines (bare
Starlette answering the same listing JSON, and ``/hello``):

* the anonymous listing (20 newest) and a product by id, directly on the
  catalog, through the gateway with its cache missed on every request (a
  query parameter that no other request carries: the gateway looks the page
  up, asks the catalog and stores the answer, as on any miss), and through the
  gateway served from its cache (``X-Cache: HIT``).

The catalog runs on its own database (``emporium_catalog_bench_<size>``), with
its outbox relay off, an ephemeral cursor secret, and the bench's Redis
database; the gateway has two workers on both cores, as in the gateway cases.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bench.catalogue.database import Prepared, bench_products, prepare, size_label
from bench.load import RESULT_PREFIX, WRK_TIMEOUT, Measurement, Plan, Request, Run, measure
from bench.run import (
    GATEWAY_CONNECTIONS,
    GATEWAY_CPUS,
    GATEWAY_WORKERS,
    PYTHON,
    SERVER_CPU,
    UNLIMITED,
    Row,
    common_environment,
    expect_cached,
    expect_ok,
    load_table,
    started,
    uvicorn_server,
)
from bench.servers import Server, ServerError

GATEWAY_PORT, CATALOG_PORT, BASELINE_PORT = 18200, 18202, 18210
NOTHING_PORT = 18209  # users and orders are not started: nothing listens here
SEARCH_CONNECTIONS = (16, 1)
DEEP_POSITION = 10_000
UNCACHED_SCRIPT = Path(__file__).parent / "wrk" / "uncached.lua"
# A short cache lifetime bounds what the cache-miss cases leave in Redis (each
# miss stores a page); the cached cases refetch once per lifetime, a negligible miss.
CACHE_TTL_SECONDS = 5
# Saleor 3.19 on this kind of machine, one worker (the shared performance page).
SALEOR_LISTING = (21, 27)
SALEOR_PRODUCT = (45, 49)


@dataclass(frozen=True, slots=True)
class SearchShape:
    key: str
    what: str
    params: dict[str, str]


SHAPES = (
    SearchShape("q", "`q` search, ranked", {"q": "headphones"}),
    SearchShape("typo", "typo search (word list, trigram lookup)", {"q": "headphnes"}),
    SearchShape(
        "filter",
        "category subtree + price range + attribute",
        {
            "category": "electronics",
            "min_price": "5000",
            "max_price": "20000",
            "attr.colour": "black",
        },
    ),
)


# --- load --------------------------------------------------------------------


def wrk_uncached(request: Request, *, connections: int, seconds: int) -> Run:
    """One wrk run in which every request carries a query parameter of its own."""
    env = {**os.environ, "BENCH_NONCE": uuid.uuid4().hex[:12]}
    argv = [
        "taskset", "-c", "0",
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}",
        "-s", str(UNCACHED_SCRIPT), request.url,
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - our own argv
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            fields = json.loads(line.removeprefix(RESULT_PREFIX))
            return Run(**{name: fields[name] for name in Run.__dataclass_fields__})
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip()}")


def measure_uncached(
    request: Request, *, connections: int, plan: Plan, settle: Callable[[], None]
) -> Measurement:
    if plan.warmup_seconds > 0:
        wrk_uncached(request, connections=connections, seconds=plan.warmup_seconds)
    runs = []
    for _ in range(plan.runs):
        settle()
        runs.append(wrk_uncached(request, connections=connections, seconds=plan.duration_seconds))
    return Measurement.of(connections, runs)


# --- servers -----------------------------------------------------------------


def catalogue_environment() -> dict[str, str]:
    return {k: v for k, v in common_environment().items() if not k.startswith("CATALOG_")}


def start_catalog(stack: ExitStack, env: dict[str, str], database_url: str) -> Server:
    catalog_env = {
        **env,
        "CATALOG_HOST": "127.0.0.1",
        "CATALOG_PORT": str(CATALOG_PORT),
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_RUN_OUTBOX_RELAY": "false",
        "CATALOG_CURSOR_SECRET": secrets.token_urlsafe(32),
        "CATALOG_USERS_URL": f"http://127.0.0.1:{NOTHING_PORT}",
    }
    catalog = started(stack, Server(
        "catalog", [PYTHON, "-m", "catalog"], cpus=SERVER_CPU, port=CATALOG_PORT,
        env=catalog_env, ready_path="/health/ready",
    ))  # fmt: skip
    assert catalog is not None
    return catalog


def start_gateway(stack: ExitStack, env: dict[str, str], catalog: Server) -> Server:
    metrics_dir = tempfile.mkdtemp(prefix="bench-catalogue-gateway-metrics-")
    stack.callback(shutil.rmtree, metrics_dir, True)
    nothing = f"http://127.0.0.1:{NOTHING_PORT}"
    gateway_env = {
        **env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "GATEWAY_WORKERS": str(GATEWAY_WORKERS),
        "GATEWAY_CATALOG_URL": catalog.url,
        "GATEWAY_USERS_URL": nothing,
        "GATEWAY_ORDERS_URL": nothing,
        "GATEWAY_OPS_URL": nothing,
        "GATEWAY_REQUIRED_UPSTREAMS": "catalog",
        "GATEWAY_CACHE_TTL_SECONDS": str(CACHE_TTL_SECONDS),
        "RATE_LIMIT_ANONYMOUS": UNLIMITED,
        "RATE_LIMIT_USER": UNLIMITED,
        "RATE_LIMIT_AUTH": UNLIMITED,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    gateway = started(stack, Server(
        "gateway", [PYTHON, "-m", "gateway"], cpus=GATEWAY_CPUS, port=GATEWAY_PORT,
        env=gateway_env, ready_path="/health/ready",
    ))  # fmt: skip
    assert gateway is not None
    return gateway


# --- requests ----------------------------------------------------------------


def products_url(base: str, params: dict[str, str] | None = None) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"{base}/api/v1/products{query}"


def page(url: str) -> dict[str, object]:
    response = httpx.get(url, timeout=30)
    if response.status_code != 200:
        raise ServerError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    assert isinstance(body, dict)
    return body


def deep_cursor(catalog: Server, position: int) -> str:
    """The cursor of the page that starts after ``position`` products (newest first),
    walked page by page through the API as a client would."""
    cursor: str | None = None
    walked = 0
    while walked < position:
        limit = min(100, position - walked)
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        body = page(products_url(catalog.url, params))
        cursor = body.get("next_cursor")  # type: ignore[assignment]
        walked += limit
        if cursor is None:
            raise ServerError(f"the listing ends before product {position}")
    assert cursor is not None
    return cursor


def items_on(url: str) -> int:
    items = page(url)["items"]
    assert isinstance(items, list)
    return len(items)


# --- the run -----------------------------------------------------------------


def _aim_p95(m: Measurement, limit_ms: float) -> str:
    met = "meets" if m.p95_ms <= limit_ms else "misses"
    return f"p95 **{m.p95_ms:.1f} ms** ({met} the aim ≤ {limit_ms:.0f} ms)"


def _times(m: Measurement | None, base: Measurement | None, label: str) -> str:
    if m is None or base is None or base.rps == 0:
        return ""
    return f"{m.rps / base.rps:.2f}x {label}"


def _aim_rps(m: Measurement, aim: int, saleor: tuple[int, int]) -> str:
    met = "meets" if m.rps >= aim else "misses"
    low, high = saleor
    fewest, most = f"{m.rps / high:.0f}", f"{m.rps / low:.0f}"
    times = fewest if fewest == most else f"{fewest}-{most}"
    return f"**{m.rps:,.0f} req/s** ({met} the aim ≥ {aim:,}); {times}x Saleor's {low}-{high} req/s"


def search_rows(catalog: Server, plan: Plan, products: int) -> list[Row]:
    limit_ms = 50.0 if products <= 100_000 else 100.0
    shapes = [(shape.what, shape.params) for shape in SHAPES]
    cursor = deep_cursor(catalog, DEEP_POSITION)
    shapes.append((f"deep page: after product {DEEP_POSITION:,}, newest first", {"cursor": cursor}))
    rows: list[Row] = []
    for what, params in shapes:
        url = products_url(catalog.url, params)
        items = items_on(url)
        shown = {k: ("<cursor>" if k == "cursor" else v) for k, v in params.items()}
        query = "&".join(f"{k}={v}" for k, v in shown.items())
        for connections in SEARCH_CONNECTIONS:
            # One warm-up per shape: the second concurrency runs on warm caches.
            shape_plan = (
                plan if connections == SEARCH_CONNECTIONS[0] else replace(plan, warmup_seconds=0)
            )
            result = measure(
                Request(url), connections=connections, plan=shape_plan, settle=catalog.settle
            )
            note = f"`?{query}`, {items} items on the page"
            if connections == 16:
                note += f"; {_aim_p95(result, limit_ms)}"
            rows.append(Row(f"{what}, {connections} conn.", result, note))
    return rows


def read_rows(
    stack: ExitStack, env: dict[str, str], catalog: Server, plan: Plan, product_id: str
) -> list[Row]:
    listing_body = httpx.get(products_url(catalog.url), timeout=30).content
    baseline = started(stack, uvicorn_server(
        "baseline", "bench.baselines.starlette_app:app", BASELINE_PORT,
        {**env, "BENCH_ME_BODY": listing_body.decode()}, "/hello",
    ))  # fmt: skip
    assert baseline is not None
    c = GATEWAY_CONNECTIONS
    ceiling_page = measure(Request(baseline.url + "/me"), connections=c, plan=plan)
    ceiling_hello = measure(Request(baseline.url + "/hello"), connections=c, plan=plan)
    baseline.stop()

    settle = catalog.settle
    listing = Request(products_url(catalog.url))
    product = Request(f"{catalog.url}/api/v1/products/{product_id}")
    expect_ok(listing)
    expect_ok(product)
    listing_direct = measure(listing, connections=c, plan=plan, settle=settle)
    product_direct = measure(product, connections=c, plan=plan, settle=settle)

    gateway = start_gateway(stack, env, catalog)
    g_listing = Request(products_url(gateway.url))
    g_product = Request(f"{gateway.url}/api/v1/products/{product_id}")
    expect_ok(g_listing)
    expect_ok(g_product)
    listing_missed = measure_uncached(g_listing, connections=c, plan=plan, settle=settle)
    product_missed = measure_uncached(g_product, connections=c, plan=plan, settle=settle)
    expect_cached(g_listing)
    listing_cached = measure(g_listing, connections=c, plan=plan)
    expect_cached(g_product)
    product_cached = measure(g_product, connections=c, plan=plan)

    gw = f"gateway, {GATEWAY_WORKERS} workers on cores {GATEWAY_CPUS}"
    return [
        Row("(a) bare Starlette, the same 20-product JSON (ceiling)", ceiling_page,
            f"core 1; {len(listing_body):,}-byte body"),
        Row("(b) bare Starlette hello", ceiling_hello, "core 1"),
        Row("(c) catalog `GET /api/v1/products` directly", listing_direct,
            f"catalog on core 1; {_times(listing_direct, ceiling_page, '(a)')}"),
        Row("(d) the same through the gateway, cache missed", listing_missed,
            f"{gw}; every request a miss, stored; "
            f"{_aim_rps(listing_missed, 1000, SALEOR_LISTING)}; "
            f"{_times(listing_missed, listing_direct, '(c)')}"),
        Row("(e) the same through the gateway, from its cache", listing_cached,
            f"{gw}; X-Cache: HIT; {_times(listing_cached, ceiling_page, '(a)')}, "
            f"{_times(listing_cached, ceiling_hello, '(b)')}"),
        Row("(f) catalog `GET /api/v1/products/{id}` directly", product_direct,
            f"catalog on core 1; {_times(product_direct, ceiling_hello, '(b)')}"),
        Row("(g) the same through the gateway, cache missed", product_missed,
            f"{gw}; every request a miss, stored; "
            f"{_aim_rps(product_missed, 1500, SALEOR_PRODUCT)}; "
            f"{_times(product_missed, product_direct, '(f)')}"),
        Row("(h) the same through the gateway, from its cache", product_cached,
            f"{gw}; X-Cache: HIT; {_times(product_cached, ceiling_hello, '(b)')}"),
    ]  # fmt: skip


def run(plan: Plan) -> str:
    products = bench_products()
    env = catalogue_environment()
    prepared = prepare(env, products)
    with ExitStack() as stack:
        catalog = start_catalog(stack, env, prepared.url)
        catalog.settle()
        rss_idle = catalog.rss_mib()
        first = page(products_url(catalog.url, {"limit": "10"}))
        items = first["items"]
        if not isinstance(items, list) or not items:
            raise ServerError("the seeded catalogue is empty")
        product_id = str(items[-1]["id"])
        searches = search_rows(catalog, plan, products)
        reads = read_rows(stack, env, catalog, plan, product_id)
        catalog.settle(timeout=60)
        rss_loaded = catalog.rss_mib()
    return report(prepared, searches, reads, rss_idle, rss_loaded)


def report(
    prepared: Prepared,
    searches: list[Row],
    reads: list[Row],
    rss_idle: float,
    rss_loaded: float,
) -> str:
    size = f"{prepared.products:,} products"
    database = prepared.url.rsplit("/", 1)[-1]
    return "\n".join([
        f"### Catalogue search (issue #14): {size}, catalog directly, one worker on core 1\n",
        load_table(searches),
        "",
        f"### Catalogue reads (issue #14): {size}, {GATEWAY_CONNECTIONS} connections\n",
        load_table(reads),
        "",
        f"Catalog process VmRSS: {rss_idle:.1f} MiB idle after start-up, {rss_loaded:.1f} MiB "
        f"idle after the load. Database `{database}` ({size}, seed "
        f"{prepared.seed_seconds:.1f} s this run: {prepared.seed_output.splitlines()[-1]}). "
        f"The gateway's cache TTL is {CACHE_TTL_SECONDS} s for these cases (a miss stores a "
        f"page; the TTL bounds what the miss cases leave in Redis); its rate limits are "
        f"raised to {UNLIMITED}. Saleor figures: ../shared/performance.md, same kind of "
        f"machine, one worker.",
    ])  # fmt: skip


def main() -> int:
    from bench.run import machine

    plan = Plan.from_environment()
    load_at_start = os.getloadavg()[0]
    print(
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {machine()}.\n"
        f"wrk: 1 thread on core 0; {plan.warmup_seconds} s warm-up, then the median of "
        f"{plan.runs} run(s) of {plan.duration_seconds} s; catalogue size "
        f"{size_label(bench_products())}.\n",
        flush=True,
    )
    try:
        print(run(plan))
    except (ServerError, OSError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\nLoad average (1 min): {load_at_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end.")  # fmt: skip
    return 0
