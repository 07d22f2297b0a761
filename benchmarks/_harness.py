"""What the benchmark modules share: paths, the two CPUs, the machine's
description, the C helpers compiled at run time, and the pyperf runner with
an ``--impl`` flag that every micro-benchmark script takes (as uvloop's do)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


@functools.lru_cache(maxsize=None)  # the CPUs the process started with
def cpus() -> tuple[int, int]:
    """(client CPU, measured CPU): the first two CPUs this process may use.
    Clients and the harness run on the first, which also takes more of the
    machine's interrupts; micro-benchmarks and servers on the second."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[min(1, len(allowed) - 1)]


def cache_dir(*parts: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "reactor-bench", *parts)
    os.makedirs(path, exist_ok=True)
    return path


def compile_c(source: str, flags: tuple[str, ...] = ()) -> str:
    """benchmarks/<source> compiled with gcc -O2, cached by a hash of the
    source, the flags and gcc's version; the binary's path."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError(f"no C compiler: benchmarks/{source} is compiled at run time")
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout
    path = os.path.join(ROOT, "benchmarks", source)
    with open(path, "rb") as f:
        key = hashlib.sha256(f.read() + repr((flags, version)).encode()).hexdigest()[:16]
    binary = os.path.join(cache_dir(), f"{os.path.basename(source)[:-2]}-{key}")
    if not os.path.exists(binary):
        res = subprocess.run([gcc, "-O2", "-Wall", "-o", f"{binary}.tmp", path, *flags],
                             capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"compiling benchmarks/{source} failed:\n{res.stderr}")
        os.replace(f"{binary}.tmp", binary)
    return binary


def _git(*args: str) -> str:
    res = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
    return res.stdout.strip()


def machine() -> dict:
    """The machine, the interpreter, the git revision (+dirty when the code
    measured has uncommitted changes) and the date."""
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), platform.machine())
    git = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no", "--", "reactor", "_native",
            "benchmarks", ":!benchmarks/recorded", "setup.py"):
        git += "+dirty"
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu_model": model, "nproc": os.cpu_count(), "kernel": platform.release(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "git": git, "loadavg": [round(x, 2) for x in os.getloadavg()]}


def runner(module: str, impls: tuple[str, ...], forward: tuple[str, ...] = (), **defaults):
    """A ``pyperf.Runner`` for ``python -m benchmarks.<module> --impl IMPL``:
    the worker processes it spawns get the same ``--impl`` and the options
    named in ``forward`` (which the module adds to ``runner.argparser``)."""
    import pyperf

    def pass_on(cmd, args):
        cmd += ["--impl", args.impl]
        for name in forward:
            if getattr(args, name) is not None:
                cmd += [f"--{name}", str(getattr(args, name))]

    run = pyperf.Runner(program_args=("-m", f"benchmarks.{module}"), add_cmdline_args=pass_on,
                        **defaults)
    run.argparser.add_argument("--impl", choices=impls, required=True)
    return run
