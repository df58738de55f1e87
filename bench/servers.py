"""Servers under test: real processes, pinned to cores, always stopped.

Each server runs in its own process group (uvicorn with workers forks), so
stopping it signals the whole group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(RuntimeError):
    pass


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((HOST, port)) != 0


class Server:
    """One server process started with ``taskset -c <cpus>``, its output kept in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str,
        port: int,
        env: Mapping[str, str],
        ready_path: str,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = ["taskset", "-c", cpus, *argv]
        self.port = port
        self.env = dict(env)
        self.ready_path = ready_path
        self.cwd = cwd
        self.url = f"http://{HOST}:{port}"
        self._log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError(f"{self.name} is not started")
        return self._proc.pid

    def start(self) -> None:
        if not port_is_free(self.port):
            raise ServerError(f"port {self.port} for {self.name} is already in use")
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our own argv
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once ``ready_path`` answers 200; False if the process died or time ran out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    return False
                try:
                    if client.get(self.url + self.ready_path).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        return False

    def rss_mib(self) -> float:
        """VmRSS of the main process, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise ServerError(f"no VmRSS for {self.name}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the main process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def settle(self, timeout: float = 30.0, busy: float = 0.05) -> None:
        """Wait until the process is idle (work queued by a past load is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < busy * 0.5:
                return

    def log_tail(self, lines: int = 10) -> str:
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._signal(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc is not None:
            # Forked workers may outlive their parent: sweep the group.
            self._signal(proc.pid, signal.SIGKILL)
        self._proc = None
        self._log.unlink(missing_ok=True)

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
