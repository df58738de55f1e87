"""What tracing costs (issue #12): four configurations side by side, runs interleaved.

    .venv/bin/python -m bench --only tracing

* **off**: ``OTEL_SDK_DISABLED=true``: no tracer provider; ``traceparent`` is
  passed on as the client sent it, log lines carry no trace ids.
* **ids only** (the default: ``OTEL_TRACES_EXPORTER`` unset, so ``none``): a
  provider that samples nothing (:mod:`emporium_kit.tracing`): every request has
  a trace and span id, in its log lines and in the ``traceparent`` the gateway
  forwards; no span is recorded.
* **exported, all**: ``OTEL_TRACES_EXPORTER=otlp`` to the bench's OTLP/HTTP sink
  (:mod:`bench.baselines.otlp_sink`, on core 0 with wrk), the SDK's default
  sampler (``parentbased_always_on``): every request recorded, with its HTTP
  server and client spans, its SQL and Redis spans, and exported in batches by
  the SDK's ``BatchSpanProcessor`` (which drops what its queue of 2,048 cannot
  hold, as it does in production).
* **exported, 1 in 10**: the same with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``
  and ``OTEL_TRACES_SAMPLER_ARG=0.1``, as a busy production deployment would
  run: one trace in ten recorded (the gateway decides, services follow its
  flag); the nine others take the context-only path, instrumentation
  suppressed (ADR 0026).

Each configuration has its own users (core 1) and gateway (2 workers, cores
0 and 1), all started at once on ports of their own (an idle server costs
nothing); each case is measured on the four together (``measure_together``),
so the ratios compare runs seconds apart.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import httpx

from bench.load import Load, Measurement, Plan, Request, measure_together
from bench.run import (
    GATEWAY_CONNECTIONS,
    GATEWAY_CPUS,
    GATEWAY_WORKERS,
    BenchUser,
    common_environment,
    create_bench_user,
    expect_ok,
    migrate,
    plain,
    ratio,
    start_gateway,
    start_users,
    started,
    table,
    users_environment,
    uvicorn_server,
)
from bench.servers import Server, ServerError

SINK_PORT = 18190  # after the configurations' ports
FIRST_GATEWAY_PORT = 18100  # configuration i: gateway 18100 + 10 i, users one above


@dataclass(frozen=True, slots=True)
class Configuration:
    name: str
    environment: dict[str, str]


def configurations(sink_url: str) -> tuple[Configuration, ...]:
    return (
        Configuration("off", {"OTEL_SDK_DISABLED": "true"}),
        Configuration("ids only (default)", {}),
        Configuration(
            "exported, 1 in 10",
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
             "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        ),
        Configuration(
            "exported, all",
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url},
        ),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stack:
    users: Server
    gateway: Server
    account: BenchUser


CASES: tuple[tuple[str, Callable[[Stack], Request]], ...] = (
    ("(a) users `GET /api/v1/users/me` directly, bearer token",
     lambda s: Request(s.users.url + "/api/v1/users/me", token=s.account.token)),
    ("(b) the same through the gateway",
     lambda s: Request(s.gateway.url + "/api/v1/users/me", token=s.account.token)),
    ("(f) `GET /.well-known/jwks.json` through the gateway",
     lambda s: Request(s.gateway.url + "/.well-known/jwks.json")),
)  # fmt: skip


def _cell(m: Measurement) -> str:
    failed = f", {m.failures} failed" if m.failures else ""
    return f"{m.rps:,.0f} (p95 {m.p95_ms:.1f} ms{failed})"


def run(plan: Plan) -> str:
    # Only the configurations below say what tracing does: none of the caller's.
    env = {k: v for k, v in common_environment().items() if not k.startswith("OTEL_")}
    migrate(env)
    with ExitStack() as stack:
        sink = started(stack, uvicorn_server(
            "otlp-sink", "bench.baselines.otlp_sink:app", SINK_PORT, env, "/spans", cpus="0",
        ))  # fmt: skip
        assert sink is not None
        chosen = configurations(sink.url)
        stacks = []
        for i, configuration in enumerate(chosen):
            mode_env = {**env, **configuration.environment}
            port = FIRST_GATEWAY_PORT + 10 * i
            users = start_users(stack, users_environment(mode_env, port=port + 1))
            users.settle()
            account = create_bench_user(users.url)
            gateway = start_gateway(stack, mode_env, users, port=port, catalog_stub=i == 0)
            if gateway is None:
                raise ServerError(f"the gateway ({configuration.name}) did not become ready")
            stacks.append(Stack(users, gateway, account))
        rows = []
        for name, request_of in CASES:
            requests = [request_of(s) for s in stacks]
            for request in requests:
                expect_ok(request)
            loads = [
                Load(request, GATEWAY_CONNECTIONS, s.users.settle)
                for request, s in zip(requests, stacks, strict=True)
            ]
            off, *others = measure_together(loads, plan)
            rows.append([
                name, _cell(off), *(_cell(m) for m in others),
                *(plain(ratio(m, off)) for m in others),
            ])  # fmt: skip
        spans = httpx.get(sink.url + "/spans", timeout=10).json()
    received = ", ".join(f"{service} {count:,}" for service, count in sorted(spans.items()))
    return (
        f"### Tracing (issue #12): {GATEWAY_CONNECTIONS} connections\n\n"
        + table(
            [
                "case",
                *(f"{c.name}: req/s" for c in chosen),
                *(f"{c.name} / off" for c in chosen[1:]),
            ],
            rows,
        )
        + f"\n\nEach configuration: users on core 1, the gateway with {GATEWAY_WORKERS} workers "
        f"on cores {GATEWAY_CPUS}; the OTLP sink on core 0. Spans the sink received over the "
        f"whole run (both exported configurations): {received or 'none'}.\n"
    )
