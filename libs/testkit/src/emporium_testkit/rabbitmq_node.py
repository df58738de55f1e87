"""A private RabbitMQ node on this machine, for tests that stop and start the broker.

The machine's RabbitMQ (127.0.0.1:5672) is shared by every test running at the same
time, so it is never stopped. :func:`private_rabbitmq` starts a node of the test's
own with the machine's ``rabbitmq-server`` and ``rabbitmqctl`` (on ``PATH``, as the
machine description promises them; called by root, they run the node as the
``rabbitmq`` user, and by that user as itself), and stops and deletes it when the
block ends, whatever happened inside (Linux: its processes are found in ``/proc``)::

    with private_rabbitmq() as node:
        url = node.amqp_url()
        node.stop_app()   # RabbitMQ stopped: connections refused, clients dropped
        node.start_app()  # and started again, durable queues and their messages kept

The node has its own name (``emporium-test-<xdist worker>-<pid>-<n>@localhost``),
AMQP port and distribution port (free ones, on loopback only), its own database,
logs, configuration and an empty plugins file (no management listener to clash
with the machine's) under a temporary directory; ``guest`` may connect from loopback,
RabbitMQ's default.

Two things are shared on purpose and need no care: epmd, the machine's one name
server, where every node registers under its own name (if none runs, the node starts
one, which stays, as the machine's broker would start it), and the Erlang cookie of
the user the scripts run the node as (``rabbitmq`` when started by root): nodes of
the same cookie could talk to each other, but every command here names its node, so
only this node is ever stopped.

Starting a node takes 4-6 s on a development machine (measured on a 2-core one
with other suites running), so test modules share one (``scope="module"``).
``stop_app()`` takes about a second, ``start_app()`` two; both block, so async tests
call them through ``asyncio.to_thread`` and their event loop goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .isolation import worker_id
from .processes import free_port

STARTUP_TIMEOUT = 60.0
COMMAND_TIMEOUT = 60.0
_SERVICE_USER = "rabbitmq"
_CLI_DIST_PORTS = range(35672, 35683)
_numbers = itertools.count(1)


class RabbitMQNodeError(RuntimeError):
    """The node would not start or a ``rabbitmqctl`` command failed (with its output
    and the end of the node's log)."""


@dataclass
class RabbitMQNode:
    """A running private node: its name, ports, directory and how long it took to start."""

    name: str
    amqp_port: int
    dist_port: int
    base: Path
    started_in: float = 0.0

    def amqp_url(self, **query: str) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/`` (``query`` as its query string, e.g.
        ``reconnect_interval="0.2"`` for aio-pika's robust connections)."""
        extra = "&".join(f"{key}={value}" for key, value in query.items())
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/" + (f"?{extra}" if extra else "")

    @property
    def log_file(self) -> Path:
        return self.base / "log" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"

    def stop_app(self) -> None:
        """``rabbitmqctl stop_app``: the RabbitMQ application stops (its listener closes,
        every client connection is dropped), the Erlang node stays up."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """``rabbitmqctl start_app``, returning once the node accepts connections again."""
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", str(int(STARTUP_TIMEOUT)))

    def ctl(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """``rabbitmqctl -n <this node> <args>``; its output, or :class:`RabbitMQNodeError`."""
        return _run(["rabbitmqctl", "-n", self.name, *args], timeout=timeout, node=self)

    def pids(self) -> list[int]:
        """The node's live processes (none once it is stopped)."""
        return _node_pids(self.base)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the node's log, after its first errors (a failed boot logs pages
        of its shutdown after the reason)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        errors = [line for line in text.splitlines() if "[error]" in line][:20]
        return "\n".join([*errors, "..."]) + "\n" + text[-chars:] if errors else text[-chars:]


def _run(
    command: Sequence[str],
    *,
    timeout: float,
    node: RabbitMQNode,
    env: Mapping[str, str] | None = None,
) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - the machine's RabbitMQ scripts
            list(command),
            env=dict(env) if env is not None else None,
            cwd=node.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RabbitMQNodeError(
            f"{' '.join(command)} did not finish within {timeout}s\n{node.log_tail()}"
        ) from exc
    if done.returncode != 0:
        raise RabbitMQNodeError(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}\n"
            f"--- {node.log_file.name}:\n{node.log_tail()}"
        )
    return done.stdout


def _hand_to_service_user(base: Path) -> None:
    """As root, ``rabbitmq-server`` runs the node as the ``rabbitmq`` user: give it the
    directory (a no-op for any other user, who runs the node as itself)."""
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam(_SERVICE_USER)
    except KeyError:
        return
    for path in (base, *base.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)


def _node_pids(base: Path) -> list[int]:
    """The live processes of this node (the Erlang VM and its helpers): those whose
    environment names its database directory, which no other process's does (the
    VM's command line does not name the node). A killed node stays a zombie when
    nothing reaps the detached VM: those do not count."""
    marker = str(base / "mnesia").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if _environ(entry).get(b"RABBITMQ_MNESIA_BASE") == marker and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _kill_leftovers(base: Path) -> None:
    for pid in _node_pids(base):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _node_pids(base) and time.monotonic() < deadline:
        time.sleep(0.05)


def _environ(entry: Path) -> dict[bytes, bytes]:
    pairs = (entry / "environ").read_bytes().split(b"\0")
    return dict(pair.partition(b"=")[::2] for pair in pairs if b"=" in pair)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def reap_orphans() -> list[str]:
    """Stop the nodes this module started for test processes that are gone (killed
    before their block could end): their node name carries the test process's pid.
    Returns the names of the nodes it killed; their directories are deleted."""
    prefix = b"emporium-test-"
    reaped: dict[str, Path] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _alive(int(entry.name)):
            continue
        with contextlib.suppress(OSError, ValueError):
            env = _environ(entry)
            name = env.get(b"RABBITMQ_NODENAME", b"")
            mnesia = env.get(b"RABBITMQ_MNESIA_BASE", b"")
            if not name.startswith(prefix) or not mnesia.endswith(b"/mnesia"):
                continue
            owner = int(name[len(prefix) :].split(b"@")[0].split(b"-")[-2])
            if owner == os.getpid() or _alive(owner):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
            reaped[name.decode()] = Path(mnesia.decode()).parent
    for base in reaped.values():
        _kill_leftovers(base)
        if base.name.startswith("emporium-rabbitmq-"):
            shutil.rmtree(base, ignore_errors=True)
    return sorted(reaped)


def _write_files(base: Path, amqp_port: int) -> None:
    (base / "mnesia").mkdir()
    (base / "log").mkdir()
    (base / "conf.d").mkdir()
    (base / "enabled_plugins").write_text("[].\n")
    # The node reads these files only: the machine's own RabbitMQ configuration, say,
    # binds 127.0.0.1:5672.
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{amqp_port}\n"
        "loopback_users.guest = true\n"
        "log.console = false\n"
        "log.file.level = info\n"
    )
    (base / "rabbitmq-env.conf").write_text("")


def _server_env(node: RabbitMQNode) -> dict[str, str]:
    base = node.base
    return {
        **os.environ,
        "RABBITMQ_NODENAME": node.name,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(node.amqp_port),
        "RABBITMQ_DIST_PORT": str(node.dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_CONFIG_FILES": str(base / "conf.d"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(node.pid_file),
        # Distribution on loopback only, and epmd too if this node is the one starting it.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }


def start_node(base: Path) -> RabbitMQNode:
    """Start a private node in the empty directory ``base`` (see the module's text);
    returns once it accepts AMQP connections. On failure nothing of it keeps running."""
    # Two different ports, neither one of those rabbitmqctl listens on while it runs.
    amqp_port = free_port()
    while amqp_port in _CLI_DIST_PORTS:
        amqp_port = free_port()
    dist_port = free_port()
    while dist_port == amqp_port or dist_port in _CLI_DIST_PORTS:
        dist_port = free_port()
    node = RabbitMQNode(
        name=f"emporium-test-{worker_id()}-{os.getpid()}-{next(_numbers)}@localhost",
        amqp_port=amqp_port,
        dist_port=dist_port,
        base=base,
    )
    _write_files(base, amqp_port)
    _hand_to_service_user(base)
    started = time.monotonic()
    try:
        _run(
            ["rabbitmq-server", "-detached"],
            timeout=COMMAND_TIMEOUT,
            node=node,
            env=_server_env(node),
        )
        # ``wait`` waits for the pid file, then for the application: ``await_startup``
        # alone fails at once while the node has not registered with epmd yet.
        node.ctl(
            "wait", str(node.pid_file), "--timeout", str(int(STARTUP_TIMEOUT)),
            timeout=STARTUP_TIMEOUT + 10,
        )  # fmt: skip
        node.ctl("await_startup", "--timeout", str(int(STARTUP_TIMEOUT)))
    except BaseException:
        stop_node(node)
        raise
    node.started_in = time.monotonic() - started
    return node


def stop_node(node: RabbitMQNode) -> None:
    """``rabbitmqctl stop`` (the whole node), then SIGKILL to whatever of it is left."""
    if _node_pids(node.base):
        with contextlib.suppress(RabbitMQNodeError):
            node.ctl("stop", timeout=30)
    _kill_leftovers(node.base)


@contextlib.contextmanager
def private_rabbitmq(*, attempts: int = 2) -> Iterator[RabbitMQNode]:
    """A RabbitMQ node of this test's own for the block (see the module's text);
    stopped, killed if need be, and deleted afterwards, also when the block fails.
    Nodes left by test processes killed outright (SIGKILL: no ``finally`` runs) are
    reaped first. A node that does not boot is tried again, ``attempts`` times in
    all, on new ports: another process may take a free port before the node does."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    reap_orphans()
    for attempt in range(1, attempts + 1):
        # Not pytest's tmp_path: its directories are root's only, and the node may
        # run as the rabbitmq user.
        base = Path(tempfile.mkdtemp(prefix=f"emporium-rabbitmq-{worker_id()}-"))
        try:
            node = start_node(base)
        except RabbitMQNodeError:
            shutil.rmtree(base, ignore_errors=True)
            if attempt == attempts:
                raise
            continue
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        break
    try:
        yield node
    finally:
        try:
            stop_node(node)
        finally:
            shutil.rmtree(base, ignore_errors=True)
