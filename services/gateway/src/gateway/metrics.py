"""The gateway's own Prometheus metrics (requests per route come from the kit)."""

from __future__ import annotations

from prometheus_client import Counter

UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Requests an upstream could not answer, by service and kind "
    "(unavailable, timeout, circuit_open).",
    ["service", "kind"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "gateway_rate_limit_rejections_total",
    "Requests refused with 429, by limit (anonymous, user, auth).",
    ["limit"],
)
CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups_total",
    "Cacheable requests by outcome (hit_local: this process's memory, hit: Redis, "
    "collapsed: the page another miss in this process was fetching, miss).",
    ["result"],
)
CACHE_INVALIDATIONS = Counter(
    "gateway_cache_invalidations_total",
    "Catalogue events (or reconnections) that invalidated the response cache.",
)
REDIS_DEGRADED = Counter(
    "gateway_redis_degraded_total",
    "Requests served without Redis, by feature (rate_limit, revocation, cache).",
    ["feature"],
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures_total",
    "Bearer tokens refused, by reason (invalid, revoked, unverifiable).",
    ["reason"],
)
