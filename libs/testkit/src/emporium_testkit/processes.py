"""Free ports and child processes that tests start and always stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ChildProcess:
    """A Python module run as a real process, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, module: str, *, env: Mapping[str, str], args: Sequence[str] = ()) -> None:
        self.module = module
        # A file, not a pipe: a chatty child must never block on a full pipe.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", module, *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def wait_until_ready(self, url: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited early:\n{self.output()[-4000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.module} did not answer {url} within {timeout}s")

    def send_signal(self, signum: int) -> None:
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self._proc.wait(timeout)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._log.close()


@contextlib.asynccontextmanager
async def serve_in_process(app: Any, port: int, **config: Any) -> AsyncIterator[uvicorn.Server]:
    """``app`` on a real uvicorn server in this event loop, until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **config)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


def run_probe(program: str, *args: str, **env: str) -> Any:
    """Runs ``program`` in a fresh interpreter and returns what it printed after ``PROBE ``.

    For tests of what a process does as a whole: which modules it loads, how it
    sets tracing up (a process installs its tracer provider once, so each
    configuration needs its own interpreter). The environment is this one's
    without any ``OTEL_`` variable (the program's tracing is its own), plus
    ``env``. ``program`` prints one line ``PROBE <json>``; a failure shows the
    end of its stderr.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env)
    done = subprocess.run(  # noqa: S603 - the test's own program
        [sys.executable, "-c", program, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = (line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))
