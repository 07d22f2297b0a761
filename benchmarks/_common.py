"""What every benchmark here shares: the machine's description, CPU pinning,
the fd limit, compiling the C helpers, and the statistics.

Kept in one place so that ``selectors_bench``, ``echo_bench``, ``loop_bench``
and the suite (``python -m benchmarks``) describe the machine, pin and count
the same way.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")
PY = sys.executable

# Two cores here: the measured process (a micro-benchmark worker, an echo
# server) runs on the second one, load clients and the harness on the first,
# which also takes more of the machine's interrupts.
_PIN_ENV = "REACTOR_BENCH_PINNED"


def log(msg: str) -> None:
    """One progress line on stderr, at once."""
    print(msg, file=sys.stderr, flush=True)


def run_cli(main) -> None:
    """Exit with main()'s status; Ctrl-C is a short message, not a traceback
    (the harnesses stop every child process on any exit)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every server and client process was stopped", file=sys.stderr)
        sys.exit(130)


# --------------------------------------------------------------------------
# CPUs
# --------------------------------------------------------------------------

def bench_cpus() -> tuple[int, int]:
    """(client/harness cpu, measured cpu): the first and second allowed CPU,
    or the same one twice on a single-CPU machine."""
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else (allowed[0], allowed[0])


def pin_argv(cpu: int, argv: list[str]) -> tuple[list[str], object]:
    """argv run under ``taskset -c cpu``, or a preexec_fn doing the same."""
    taskset = shutil.which("taskset")
    if taskset:
        return [taskset, "-c", str(cpu), *argv], None
    return argv, (lambda: os.sched_setaffinity(0, {cpu}))


def pin_self(enabled: bool) -> str:
    """Pin this whole process to the measured CPU; may re-exec itself under
    taskset (and then never returns).  Returns how it is pinned."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        return "not pinned"
    if os.environ.get(_PIN_ENV):
        aff = sorted(os.sched_getaffinity(0))
        return f"cpu {','.join(map(str, aff))} ({os.environ[_PIN_ENV]})"
    cpu = bench_cpus()[1]
    taskset = shutil.which("taskset")
    orig = getattr(sys, "orig_argv", None)
    if taskset and orig:
        env = dict(os.environ)
        env[_PIN_ENV] = f"taskset -c {cpu}"
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(taskset, [taskset, "-c", str(cpu), sys.executable, *orig[1:]], env)
        except OSError:
            pass  # fall through to sched_setaffinity
    os.sched_setaffinity(0, {cpu})
    os.environ[_PIN_ENV] = "sched_setaffinity"
    return f"cpu {cpu} (sched_setaffinity)"


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE toward the hard limit when below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft, hard
    target = hard if hard != resource.RLIM_INFINITY else max(needed, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------

def _run(argv) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_head() -> str | None:
    """Short HEAD, with ``+dirty`` when the implementation has uncommitted changes."""
    head = _run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    if head and _run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                      "--", "reactor", "_native", "setup.py", "pyproject.toml"]):
        head += "+dirty"
    return head


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def uvloop_version() -> str | None:
    """uvloop's version in this interpreter, None when it is not installed."""
    return _run([PY, "-c", "import uvloop; print(uvloop.__version__)"]) or None


def machine_info() -> dict:
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": " ".join(shlex.quote(a) for a in getattr(sys, "orig_argv", [PY] + sys.argv)),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "git": git_head(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------
# C helpers, compiled at run time
# --------------------------------------------------------------------------

CFLAGS = ["-O2", "-Wall"]


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "reactor-bench")
    try:
        os.makedirs(path, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return tempfile.mkdtemp(prefix="reactor-bench-")


def gcc_version(gcc: str) -> str:
    out = _run([gcc, "--version"])
    return out.splitlines()[0] if out else "?"


def compile_c(src: str, name: str, log=log) -> tuple[str, str]:
    """Compile ``src`` (cached in ~/.cache/reactor-bench, keyed by a hash of
    the source, the flags and the compiler's version); returns (binary, gcc)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise RuntimeError(f"gcc not found: {os.path.basename(src)} is compiled at run time")
    version = gcc_version(gcc)
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join(CFLAGS + [version]).encode()).hexdigest()[:16]
    out = os.path.join(cache_dir(), f"{name}-{digest}")
    if not os.path.exists(out):
        tmp = f"{out}.tmp{os.getpid()}"
        res = subprocess.run([gcc, *CFLAGS, "-o", tmp, src], capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"compiling {src} failed:\n{res.stderr}")
        os.replace(tmp, out)
        log(f"built {out}")
    return out, f"{gcc} ({version})"


def size_label(size: int) -> str:
    """1024 -> '1 KiB', 100 -> '100 B'."""
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def echo_png(size: int) -> str:
    """The echo plot's file name for one message size: echo_1KiB.png."""
    return f"echo_{size_label(size).replace(' ', '')}.png"


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def quartiles(xs) -> tuple[float, float]:
    xs = sorted(xs)
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def describe(values) -> dict:
    """mean, stdev, median, min, max and quartiles of ``values``."""
    values = list(values)
    q1, q3 = quartiles(values)
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "q1": q1,
        "q3": q3,
    }
