"""Load generation: wrk pinned to core 0, a warm-up, then the median of N runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parent / "wrk" / "request.lua"
RESULT_PREFIX = "BENCH_RESULT "
WRK_TIMEOUT = "30s"  # login at bcrypt cost 12 queues for seconds; do not count it as lost


@dataclass(frozen=True, slots=True)
class Plan:
    warmup_seconds: int
    duration_seconds: int
    runs: int

    @classmethod
    def from_environment(cls) -> Plan:
        return cls(
            warmup_seconds=int(os.environ.get("BENCH_WARMUP", "3")),
            duration_seconds=int(os.environ.get("BENCH_DURATION", "10")),
            runs=int(os.environ.get("BENCH_RUNS", "3")),
        )


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    method: str = "GET"
    body: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run, as printed by the Lua ``done()`` hook (latencies in microseconds)."""

    requests: int
    rps: float
    p50_us: int
    p95_us: int
    p99_us: int
    non_2xx: int
    socket_errors: int
    timeouts: int

    @property
    def failures(self) -> int:
        """Requests answered other than 2xx, or not answered (socket errors, timeouts)."""
        return self.non_2xx + self.socket_errors + self.timeouts


@dataclass(frozen=True, slots=True)
class Measurement:
    """The median of each figure over the runs; error counts are summed."""

    connections: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    failures: int

    @classmethod
    def of(cls, connections: int, runs: list[Run]) -> Measurement:
        def median_ms(values: list[int]) -> float:
            return statistics.median(values) / 1000

        return cls(
            connections=connections,
            rps=statistics.median(r.rps for r in runs),
            p50_ms=median_ms([r.p50_us for r in runs]),
            p95_ms=median_ms([r.p95_us for r in runs]),
            p99_ms=median_ms([r.p99_us for r in runs]),
            requests=sum(r.requests for r in runs),
            failures=sum(r.failures for r in runs),
        )


def wrk(request: Request, *, connections: int, seconds: int) -> Run:
    env = {**os.environ, "BENCH_METHOD": request.method}
    env["BENCH_BODY"] = request.body or ""
    env["BENCH_TOKEN"] = request.token or ""
    argv = [
        "taskset", "-c", "0",
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}",
        "-s", str(SCRIPT), request.url,
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - our own argv
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            fields = json.loads(line.removeprefix(RESULT_PREFIX))
            return Run(**{name: fields[name] for name in Run.__dataclass_fields__})
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class Load:
    """One case of :func:`measure_together`: what is asked, how, and what to wait out."""

    request: Request
    connections: int
    settle: Callable[[], None] = lambda: None


def measure_together(loads: Sequence[Load], plan: Plan) -> list[Measurement]:
    """Each case's warm-up, then their runs in turn: run 1 of every case, run 2, ...

    A ratio of two of them then compares runs made seconds apart rather than a
    case's three runs with another's three, minutes later: a machine whose speed
    drifts (other tenants of its host) moves both sides of the ratio alike.
    """
    if plan.warmup_seconds > 0:
        for load in loads:
            wrk(load.request, connections=load.connections, seconds=plan.warmup_seconds)
    runs: list[list[Run]] = [[] for _ in loads]
    for _ in range(plan.runs):
        for load, done in zip(loads, runs, strict=True):
            load.settle()
            done.append(
                wrk(load.request, connections=load.connections, seconds=plan.duration_seconds)
            )
    return [Measurement.of(load.connections, done) for load, done in zip(loads, runs, strict=True)]


def measure(
    request: Request,
    *,
    connections: int,
    plan: Plan,
    settle: Callable[[], None] = lambda: None,
) -> Measurement:
    """A warm-up, then ``plan.runs`` runs; ``settle`` waits out the work a run left queued."""
    (measured,) = measure_together([Load(request, connections, settle)], plan)
    return measured
