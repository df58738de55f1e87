"""Idle RSS of every service in a runtime-only environment (``python -m bench --only rss``).

Each service gets a virtualenv of its own under ``var/bench-venvs/`` (git-ignored),
made with ``python -m venv`` and ``pip install -c constraints.txt libs/kit <service>``:
a regular (not editable) install of the kit and the service, in one pip command so
the kit parts the service names as extras (``emporium-kit[database,...]``) resolve
from the local kit; no requirements-dev.txt, no test extras. A venv is rebuilt when
constraints.txt, the kit's or the service's pyproject.toml or the Python changes,
and the two local packages are reinstalled (``--no-deps``) when their sources
change, so a rerun takes seconds.

Every service is then started from its venv the way its ``__main__`` does
(``python -m users`` and so on), from an empty working directory, on free ports;
once ``/health/live`` answers and the process has been idle for a few seconds,
VmRSS (and Pss, RssAnon) of the process and of any process it forked is read from
``/proc``. A ``sitecustomize`` on ``PYTHONPATH`` writes the names in ``sys.modules``
on SIGURG, sent after the readings; those modules, imported afresh one by one in
the same venv, show where the imports' RSS goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.servers import HOST, Server, ServerError

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
KIT = ROOT / "libs" / "kit"
VENV_ROOT = ROOT / "var" / "bench-venvs"
COMPLETE_STAMP = ".bench-key"
SOURCES_STAMP = ".bench-sources"
IDLE_SECONDS = 5.0
AIM_MB = 120.0
MIB = 1024 * 1024
SERVER_CPUS = "0,1"
# Distributions of requirements-dev.txt that must not be in a runtime environment.
DEV_ONLY = (
    "pytest", "pytest-asyncio", "pytest-xdist", "hypothesis", "schemathesis", "mypy",
    "ruff", "import-linter", "honcho", "hatchling", "playwright", "rich", "py-spy",
    "asgi-lifespan", "openapi-spec-validator",
)  # fmt: skip

MODULE_DUMP = '''\
"""Bench hook: on SIGURG, write the names in sys.modules to $BENCH_MODULES_DIR/<pid>."""
import os
import signal
import sys


def _dump_modules(signum, frame):
    directory = os.environ.get("BENCH_MODULES_DIR")
    if directory:
        path = os.path.join(directory, str(os.getpid()))
        with open(path + ".part", "w") as out:
            out.write("\\n".join(sys.modules))
        os.replace(path + ".part", path)


# SIGURG: ignored by default and by uvicorn, so a process without the hook is unharmed.
signal.signal(signal.SIGURG, _dump_modules)
'''

# Run in a service's venv: import the modules the service had loaded, in that order,
# and charge each one's own RSS growth (its nested imports excluded) to its distribution.
IMPORT_BREAKDOWN = """\
import importlib, importlib.abc, importlib.metadata, sys, json

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

stack, own = [], {}

class Measuring(importlib.abc.Loader):
    def __init__(self, inner, name):
        self.inner, self.name = inner, name
    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)
    def create_module(self, spec):
        stack.append([rss(), 0])
        create = getattr(self.inner, "create_module", None)
        return create(spec) if create else None
    def exec_module(self, module):
        try:
            self.inner.exec_module(module)
        finally:
            start, nested = stack.pop()
            grown = rss() - start
            top = self.name.partition(".")[0]
            own[top] = own.get(top, 0) + grown - nested
            if stack:
                stack[-1][1] += grown

class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = Measuring(spec.loader, name)
                return spec
        return None

names = open(sys.argv[1]).read().split()
start = rss()
sys.meta_path.insert(0, Finder())
for name in names:
    if name not in sys.modules and name not in ("__main__", "__mp_main__"):
        try:
            importlib.import_module(name)
        except BaseException:
            pass
end = rss()
sys.meta_path.pop(0)
distributions = importlib.metadata.packages_distributions()
by = {}
for top, kib in own.items():
    if top in sys.stdlib_module_names:
        label = "(stdlib)"
    else:
        found = sorted(set(distributions.get(top, [top])))
        label = found[0] if len(found) == 1 else top + "-*"
    by[label] = by.get(label, 0) + kib
print(json.dumps({"start": start, "end": end, "by": by}))
"""


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    directory: Path
    module: str
    uses_kit: bool

    @property
    def packages(self) -> list[Path]:
        """What pip installs, in one command: the local kit (when used) and the service."""
        return [KIT, self.directory] if self.uses_kit else [self.directory]


SERVICES = (
    Service("mailsink", ROOT / "stand-ins" / "mailsink", "mailsink", uses_kit=False),
    Service("users", ROOT / "services" / "users", "users", uses_kit=True),
    Service("gateway", ROOT / "services" / "gateway", "gateway", uses_kit=True),
    Service("catalog", ROOT / "services" / "catalog", "catalog", uses_kit=True),
)


# --- runtime venvs -----------------------------------------------------------


def _digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def venv_key(service: Service) -> str:
    """What the installed distributions depend on: the pins, the pyprojects, the Python."""
    files = [CONSTRAINTS, *(package / "pyproject.toml" for package in service.packages)]
    interpreter = f"{sys.version}\0{getattr(sys, '_base_executable', sys.executable)}\0"
    return _digest(files) + hashlib.sha256(interpreter.encode()).hexdigest()[:8]


def sources_key(service: Service) -> str:
    """The local packages' files as pip would build them."""
    files = sorted(
        path
        for package in service.packages
        for path in (package / "src").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    return _digest(files)


def _pip(python: Path, *args: str | Path) -> None:
    argv = [str(python), "-m", "pip", "install", "--quiet", *map(str, args)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ServerError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def _venv_lock() -> Iterator[None]:
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with (VENV_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def runtime_venv(service: Service) -> tuple[Path, str]:
    """The service's runtime venv (built or refreshed as needed) and what was done."""
    key = venv_key(service)
    venv = VENV_ROOT / f"{service.name}-{key}"
    python = venv / "bin" / "python"
    with _venv_lock():
        for stale in VENV_ROOT.glob(f"{service.name}-*"):
            if stale != venv:
                shutil.rmtree(stale, ignore_errors=True)
        stamp = venv / COMPLETE_STAMP
        action = "cached"
        if not stamp.is_file() or stamp.read_text() != key:
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
            _pip(python, "-c", CONSTRAINTS, *service.packages)
            stamp.write_text(key)
            (venv / SOURCES_STAMP).write_text(sources_key(service))
            action = "built"
        sources = sources_key(service)
        if (venv / SOURCES_STAMP).read_text() != sources:
            _pip(python, "--no-deps", "--force-reinstall", *service.packages)
            (venv / SOURCES_STAMP).write_text(sources)
            action = "local packages reinstalled"
    return venv, action


def installed_distributions(python: Path) -> list[str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"
    )
    done = subprocess.run(  # noqa: S603 - our own argv
        [str(python), "-c", code], capture_output=True, text=True, check=True
    )
    names: list[str] = json.loads(done.stdout)
    return names


def check_runtime_only(service: Service, python: Path) -> int:
    """The number of distributions in the venv; an error if a development tool is among them."""
    names = installed_distributions(python)
    normalized = {name.replace("_", "-") for name in names}
    found = sorted(normalized & set(DEV_ONLY))
    if found:
        raise ServerError(f"{service.name}'s runtime venv holds development packages: {found}")
    return len(names)


# --- memory of a process tree --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Memory:
    pid: int
    command: str
    rss_kib: int
    anon_kib: int
    pss_kib: int | None


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ServerError(f"no {field} for process {pid}")


def _pss_kib(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def _command(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [word.decode(errors="replace") for word in argv if word]
    if len(words) > 1 and Path(words[0]).name.startswith("python"):
        words = ["python", *words[1:]]
    text = " ".join(words)
    return text if len(text) <= 60 else text[:57] + "..."


def descendants(pid: int) -> list[int]:
    """Every process forked by ``pid``, found through the parent ids in /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], list(parents.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(parents.get(child, []))
    return sorted(found)


def tree_memory(pid: int) -> list[Memory]:
    return [
        Memory(
            pid=p,
            command=_command(p),
            rss_kib=_status_kib(p, "VmRSS"),
            anon_kib=_status_kib(p, "RssAnon"),
            pss_kib=_pss_kib(p),
        )
        for p in [pid, *descendants(pid)]
    ]


# --- the run -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def runtime_environment(base: Mapping[str, str], venv: Path, hook_dir: Path) -> dict[str, str]:
    """``base`` without the development venv's traces, with the module counter hooked in."""
    dropped = (
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONDONTWRITEBYTECODE",
    )
    env = {k: v for k, v in base.items() if k not in dropped}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONPATH"] = str(hook_dir)
    env["BENCH_MODULES_DIR"] = str(hook_dir / "modules")
    return env


@dataclass(frozen=True, slots=True)
class Measured:
    label: str
    distributions: int
    venv_action: str
    processes: list[Memory]


def _delete_queues(amqp_url: str, *names: str) -> None:
    import aio_pika  # the development venv's; only the bench needs it here

    async def delete() -> None:
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            for name in names:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)

    with contextlib.suppress(Exception):
        asyncio.run(delete())


def measure_rss(env: Mapping[str, str], signing_key: str) -> str:
    """Build (or reuse) the runtime venvs, start every service, and return the RSS table."""
    venvs: dict[str, tuple[Path, str, int]] = {}
    for service in SERVICES:
        print(f"runtime venv for {service.name} ...", file=sys.stderr, flush=True)
        venv, action = runtime_venv(service)
        count = check_runtime_only(service, venv / "bin" / "python")
        venvs[service.name] = (venv, action, count)

    reset_queue = f"bench.users.password-reset-mailer.{uuid.uuid4().hex[:8]}"
    amqp_url = env.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    smtp_port, mail_http, users_port = free_port(), free_port(), free_port()
    catalog_port = free_port()
    # The catalogue bench's database, migrated here when needed and not seeded: an
    # idle API process reads nothing from it but its readiness.
    from bench.catalogue.database import bench_products, migrated  # it imports bench.run

    catalog_database = migrated(dict(env), bench_products())
    gateway_ports = free_port(), free_port()
    users_url = f"http://{HOST}:{users_port}"
    extra: dict[str, dict[str, str]] = {
        "mailsink": {"MAILSINK_SMTP_PORT": str(smtp_port), "MAILSINK_HTTP_PORT": str(mail_http)},
        "users": {
            "USERS_HOST": HOST,
            "USERS_PORT": str(users_port),
            "USERS_JWT_PRIVATE_KEY": signing_key,
            "USERS_RUN_OUTBOX_RELAY": "false",
            "USERS_RESET_MAILER_QUEUE": reset_queue,
            "SMTP_HOST": HOST,
            "SMTP_PORT": str(smtp_port),
        },
        "catalog": {
            "CATALOG_HOST": HOST,
            "CATALOG_PORT": str(catalog_port),
            "CATALOG_DATABASE_URL": catalog_database,
            "CATALOG_RUN_OUTBOX_RELAY": "false",
            "CATALOG_CURSOR_SECRET": secrets.token_urlsafe(32),
            "CATALOG_USERS_URL": users_url,
        },
    }
    gateway_env = {
        "GATEWAY_HOST": HOST,
        "GATEWAY_USERS_URL": users_url,
        "GATEWAY_CATALOG_URL": f"http://{HOST}:{free_port()}",  # nothing there
        "GATEWAY_ORDERS_URL": f"http://{HOST}:{free_port()}",
        "GATEWAY_REQUIRED_UPSTREAMS": "users",
        "GATEWAY_REDIS_KEY_PREFIX": f"bench:rss:{uuid.uuid4().hex[:8]}:",
        # The load after the idle reading is forwarded, not refused with 429.
        "RATE_LIMIT_ANONYMOUS": "10000000/minute",
    }
    runs = [
        ("mailsink", "mailsink", mail_http, {}),
        ("users", "users", users_port, {}),
        ("gateway", "gateway (1 worker, the default)", gateway_ports[0], {"GATEWAY_WORKERS": "1"}),
        (
            "gateway",
            "gateway, GATEWAY_WORKERS=2 (as in the load bench)",
            gateway_ports[1],
            {"GATEWAY_WORKERS": "2"},
        ),
        ("catalog", "catalog", catalog_port, {}),
    ]
    by_name = {service.name: service for service in SERVICES}
    results: list[Measured] = []
    breakdowns: list[tuple[str, Breakdown]] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        hook_dir = Path(tmp)
        (hook_dir / "sitecustomize.py").write_text(MODULE_DUMP)
        modules_dir = hook_dir / "modules"
        modules_dir.mkdir()
        workdir = hook_dir / "cwd"  # empty: no .env, nothing importable
        workdir.mkdir()
        stack.callback(_delete_queues, amqp_url, reset_queue, f"{reset_queue}.dlq")
        started: list[tuple[Server, str, str, dict[str, str]]] = []
        for name, label, port, settings in runs:
            venv = venvs[name][0]
            run_env = runtime_environment(env, venv, hook_dir)
            run_env.update(extra.get(name, {}))
            if name == "gateway":
                run_env.update(gateway_env, GATEWAY_PORT=str(port), **settings)
            server = Server(
                f"rss-{name}",
                [str(venv / "bin" / "python"), "-m", by_name[name].module],
                cpus=SERVER_CPUS,
                port=port,
                env=run_env,
                ready_path="/health/live",
                cwd=workdir,
            )
            stack.callback(server.stop)
            server.start()
            if not server.wait_ready(timeout=60):
                raise ServerError(f"{label} did not become live:\n{server.log_tail()}")
            server.settle()
            started.append((server, label, name, run_env))
        time.sleep(IDLE_SECONDS)
        for server, label, name, _ in started:
            _, action, count = venvs[name]
            results.append(Measured(label, count, action, tree_memory(server.pid)))
        # Only now, after every reading: ask each process for its module names.
        modules = module_names(modules_dir, [m.pid for r in results for m in r.processes])
        after_load = _after_load(list(zip(started, results, strict=True)), users_url)
        for server, _, _, _ in reversed(started):
            server.stop()
        for (_, label, name, run_env), result in zip(started, results, strict=True):
            main_pid = result.processes[0].pid
            if len(result.processes) == 1 and main_pid in modules:
                python = venvs[name][0] / "bin" / "python"
                breakdown = import_breakdown(python, run_env, modules[main_pid], workdir)
                breakdowns.append((label, breakdown))
    counts = {pid: len(names) for pid, names in modules.items()}
    return (
        rss_table(results, counts)
        + "\n\n"
        + after_load_table(results, after_load)
        + "\n\n"
        + breakdown_table(results, breakdowns)
    )


LOAD_SECONDS = 10
LOAD_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class AfterLoad:
    label: str
    asked: str
    requests: int
    failed: int
    rss_kib: int


Started = tuple[Server, str, str, dict[str, str]]  # server, label, service name, environment


def _after_load(started: Sequence[tuple[Started, Measured]], users_url: str) -> list[AfterLoad]:
    """Each single-process HTTP service's VmRSS once idle again after ``LOAD_SECONDS`` of
    wrk on one of its routes (its sockets, buffers and caches as traffic leaves them)."""
    from bench.load import Request, wrk
    from bench.run import create_bench_user  # it imports this module

    token = create_bench_user(users_url).token
    routes = {
        "mailsink": ("/api/v1/messages", None),
        "users": ("/api/v1/users/me", token),
        "gateway": ("/.well-known/jwks.json", None),  # through it to users
        "catalog": ("/api/v1/products", None),
    }
    measured = []
    for (server, label, name, _), idle in started:
        if len(idle.processes) > 1:
            continue  # the 2-worker gateway: its idle figure is the one that says something
        path, bearer = routes[name]
        run = wrk(Request(server.url + path, token=bearer), connections=LOAD_CONNECTIONS,
                  seconds=LOAD_SECONDS)  # fmt: skip
        server.settle()
        time.sleep(IDLE_SECONDS)
        measured.append(
            AfterLoad(label, path, run.requests, run.failures, _status_kib(server.pid, "VmRSS"))
        )
    return measured


def after_load_table(results: Sequence[Measured], after: Sequence[AfterLoad]) -> str:
    idle = {r.label: r.processes[0].rss_kib for r in results}
    lines = [
        f"| service | asked, {LOAD_CONNECTIONS} connections for {LOAD_SECONDS} s | requests "
        f"(not 2xx or failed) | VmRSS idle MiB | VmRSS idle after the load MiB | "
        f"aim ≤ {AIM_MB:.0f} MB after the load |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {a.label} | `GET {a.asked}` | {a.requests:,} ({a.failed}) | {_mib(idle[a.label])} | "
        f"{_mib(a.rss_kib)} | {_verdict(a.rss_kib)} |"
        for a in after
    ]
    return "\n".join(lines)


def module_names(
    directory: Path, pids: Sequence[int], timeout: float = 5.0
) -> dict[int, list[str]]:
    """``sys.modules`` of each process, written by the SIGURG hook."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGURG)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((directory / str(pid)).is_file() for pid in pids):
            break
        time.sleep(0.1)
    return {
        pid: (directory / str(pid)).read_text().split()
        for pid in pids
        if (directory / str(pid)).is_file()
    }


@dataclass(frozen=True, slots=True)
class Breakdown:
    start_kib: int
    end_kib: int
    by_distribution: dict[str, int]


def import_breakdown(
    python: Path, env: Mapping[str, str], names: Sequence[str], workdir: Path
) -> Breakdown:
    """Where the imports' RSS goes: the service's modules imported afresh, measured one by one."""
    names_file = workdir.parent / "names.txt"
    names_file.write_text("\n".join(names))
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    done = subprocess.run(  # noqa: S603 - our own argv
        [str(python), "-c", IMPORT_BREAKDOWN, str(names_file)],
        env=clean, cwd=workdir, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Breakdown(data["start"], data["end"], {k: int(v) for k, v in data["by"].items()})


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def _verdict(kib: int) -> str:
    mb = kib * 1024 / 1e6
    return f"{'meets' if mb <= AIM_MB else 'misses'} ({mb:.1f} MB)"


def rss_table(results: Sequence[Measured], modules: Mapping[int, int]) -> str:
    headers = [
        "service", "process", "VmRSS MiB", "RssAnon MiB", "Pss MiB", "modules loaded",
        f"aim ≤ {AIM_MB:.0f} MB",
    ]  # fmt: skip
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for result in results:
        multi = len(result.processes) > 1
        for memory in result.processes:
            pss = _mib(memory.pss_kib) if memory.pss_kib is not None else "-"
            count = str(modules[memory.pid]) if memory.pid in modules else "-"
            lines.append(
                f"| {result.label} | `{memory.command}` | {_mib(memory.rss_kib)} | "
                f"{_mib(memory.anon_kib)} | {pss} | {count} | "
                f"{'' if multi else _verdict(memory.rss_kib)} |"
            )
        if multi:
            rss = sum(m.rss_kib for m in result.processes)
            pss_values = [m.pss_kib for m in result.processes if m.pss_kib is not None]
            pss_sum = sum(pss_values) if len(pss_values) == len(result.processes) else None
            lines.append(
                f"| {result.label} | **all {len(result.processes)} processes** | {_mib(rss)} | "
                f"{_mib(sum(m.anon_kib for m in result.processes))} | "
                f"{_mib(pss_sum) if pss_sum is not None else '-'} | | "
                f"Pss: {_verdict(pss_sum) if pss_sum is not None else '-'} |"
            )
    venvs = ", ".join(
        dict.fromkeys(
            f"{r.label.split()[0].rstrip(',')} {r.distributions} distributions ({r.venv_action})"
            for r in results
        )
    )
    return "\n".join(lines) + f"\n\nRuntime venvs ({VENV_ROOT.relative_to(ROOT)}/): {venvs}."


def breakdown_table(
    results: Sequence[Measured], breakdowns: Sequence[tuple[str, Breakdown]], top: int = 12
) -> str:
    idle = {r.label: r.processes[0].rss_kib for r in results}
    lines = [
        "Where it goes (VmRSS MiB; each module imported afresh in the service's venv, in the "
        "order the service had loaded them, its own growth without its nested imports charged "
        "to its distribution):\n",
        "| service | interpreter | imports | largest importers | the rest: app, connections, "
        "threads, heap |",
        "|---|---|---|---|---|",
    ]
    for label, b in breakdowns:
        largest = ", ".join(
            f"{name} {kib / 1024:.1f}"
            for name, kib in sorted(b.by_distribution.items(), key=lambda kv: -kv[1])[:top]
        )
        rest = idle[label] - b.end_kib
        lines.append(
            f"| {label} | {_mib(b.start_kib)} | {_mib(b.end_kib - b.start_kib)} | {largest} | "
            f"{_mib(rest)} |"
        )
    return "\n".join(lines)
