"""py-spy profiles of a server under one bench case's load (``python -m bench --profile CASE``).

One ``py-spy record --format raw --function --gil`` per worker process, all at
once, for a fixed number of seconds while wrk drives the case. The raw files
(collapsed stacks, one ``frame;frame;... count`` line each; speedscope opens
them too) are kept under ``var/bench-profiles/``; the summary gives the
functions with the most samples of their own (the leaf frame) and in total (the
frame anywhere on the stack), and the own samples by package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ServerError

ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = ROOT / "var" / "bench-profiles"
RATE_HZ = 100
OUTER_SHARE = 0.98  # frames on (nearly) every stack: the process and its event loop


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise ServerError(
            "py-spy not found: .venv/bin/pip install -c constraints.txt py-spy (requirements-dev)"
        )
    return found


def record(pids: Sequence[int], *, seconds: int, stem: str, native: bool = False) -> list[Path]:
    """Sample every process in ``pids`` for ``seconds``; the raw output files."""
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    running: list[tuple[subprocess.Popen[str], Path]] = []
    for pid in pids:
        out = PROFILE_DIR / f"{stem}-pid{pid}.txt"
        argv = [
            py_spy(), "record", "--pid", str(pid), "--duration", str(seconds),
            "--rate", str(RATE_HZ), "--format", "raw", "--function", "--gil", "--full-filenames",
            "--output", str(out), *(["--native"] if native else []),
        ]  # fmt: skip
        proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        running.append((proc, out))
    files = []
    for proc, out in running:
        output, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0 or not out.is_file():
            raise ServerError(f"py-spy failed (exit {proc.returncode}):\n{output.strip()}")
        files.append(out)
    return files


@dataclass(frozen=True, slots=True)
class Summary:
    samples: int
    own: Counter[str]
    total: Counter[str]
    packages: Counter[str]


STDLIB_DIR = re.compile(r"/lib/python3\.\d+/")


def short_path(path: str) -> str:
    """A module path from its import root: site-packages, the stdlib, or an editable src/."""
    if "/site-packages/" in path:
        return path.rpartition("/site-packages/")[2]
    if STDLIB_DIR.search(path):
        return STDLIB_DIR.split(path)[-1]
    if "/src/" in path:  # an editable install of ours: libs/kit/src/emporium_kit/...
        return path.rpartition("/src/")[2]
    return path if path.startswith("<") else Path(path).name


def shorten(frame: str) -> str:
    """``name (path:line)`` with the path from its import root."""
    name, _, location = frame.rpartition(" (")
    if not name:
        return frame
    path, colon, line = location.rstrip(")").rpartition(":")
    if not colon:  # a native frame: (library path)
        return f"{name} ({short_path(line)})"
    return f"{name} ({short_path(path)}:{line})"


def package_of(frame: str) -> str:
    """The top-level package (or stdlib module) of a shortened ``name (path:line)`` frame."""
    location = frame.rpartition(" (")[2].rstrip(")")
    path = location.rpartition(":")[0] or location
    if path.startswith("<"):
        return path
    return path.split("/", 1)[0].removesuffix(".py") or "?"


def summarize(files: Sequence[Path]) -> Summary:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [shorten(frame) for frame in stack.split(";")]
            n = int(count)
            samples += n
            own[frames[-1]] += n
            packages[package_of(frames[-1])] += n
            for frame in set(frames):
                total[frame] += n
    return Summary(samples=samples, own=own, total=total, packages=packages)


def _cell(frame: str) -> str:
    name, _, location = frame.rpartition(" (")
    if not name:
        return f"`{frame}`"
    return f"`{name}` ({location.rstrip(')')})"


def _share(n: int, samples: int) -> str:
    return f"{100 * n / samples:.1f} %" if samples else "-"


def tables(summary: Summary, top: int = 15) -> str:
    s = summary.samples
    lines = [f"By own time (the function itself was running), of {s:,} samples:\n"]
    lines += ["| # | function (file:first line) | own | total |", "|---|---|---|---|"]
    for rank, (frame, n) in enumerate(summary.own.most_common(top), 1):
        lines.append(f"| {rank} | {_cell(frame)} | {_share(n, s)} | "
                     f"{_share(summary.total[frame], s)} |")  # fmt: skip
    outer = [frame for frame, n in summary.total.items() if n >= OUTER_SHARE * s]
    lines += [
        "",
        f"By total time (the function was on the stack; the {len(outer)} frames on more than "
        f"{OUTER_SHARE:.0%} of the samples, process start-up and the event loop, left out):\n",
    ]
    lines += ["| # | function (file:first line) | total | own |", "|---|---|---|---|"]
    inner = Counter({frame: n for frame, n in summary.total.items() if frame not in outer})
    for rank, (frame, n) in enumerate(inner.most_common(top), 1):
        lines.append(f"| {rank} | {_cell(frame)} | {_share(n, s)} | "
                     f"{_share(summary.own[frame], s)} |")  # fmt: skip
    lines += ["", "Own time by package:\n", "| package | own |", "|---|---|"]
    for package, n in summary.packages.most_common(top):
        lines.append(f"| {package} | {_share(n, s)} |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """``python -m bench.profiling FILE...``: the tables of saved raw profiles again."""
    if not argv:
        print("usage: python -m bench.profiling RAW_FILE...", file=sys.stderr)
        return 2
    print(tables(summarize([Path(arg) for arg in argv])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
