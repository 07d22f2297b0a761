"""Selector micro-benchmarks: reactor vs. the stdlib ``selectors`` module.

Run from the repository root::

    python -m benchmarks.selectors_bench                  # full run (~25 s here)
    python -m benchmarks.selectors_bench --quick          # smoke run (seconds)
    python -m benchmarks.selectors_bench --json out.json  # + machine-readable

Every case times the same operation on ``reactor.<X>Selector`` ("ours") and on
``selectors.<X>Selector`` ("stdlib") in the same process, interleaved
(AB, BA, AB, ... over many rounds), each round being one timed batch of many
operations.  Reported figures are medians over rounds of the per-operation
time, and ``ratio = stdlib / ours`` (so > 1 means reactor is faster).  The
spread columns give min-max of the per-op times and the interquartile range
of the per-round paired ratios.

To cut noise on small machines the process pins itself to a single CPU
(re-exec under ``taskset``, falling back to ``os.sched_setaffinity``), and the
garbage collector is disabled inside timed batches.

Exit status: 0 normally; 2 when a correctness sanity check fails (ours and
stdlib disagree, or the strace check shows data-only modify making
syscalls); with ``--check-targets`` also 1 when a performance target is missed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import repeat

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE
FD_SETSIZE = 1024  # select(2) limit, stdlib SelectSelector cannot go past it

BACKENDS = ("Epoll", "Poll", "Select")
SIZES = (1, 10, 100, 1000)
BIG_N = 1000

_PIN_ENV = "REACTOR_BENCH_PINNED"

perf_counter_ns = time.perf_counter_ns


# --------------------------------------------------------------------------
# Environment: CPU pinning, fd limits, machine description
# --------------------------------------------------------------------------

def _pick_cpu() -> int:
    allowed = sorted(os.sched_getaffinity(0))
    # Prefer CPU 1 (CPU 0 usually takes more interrupts), else the last one.
    return 1 if 1 in allowed and len(allowed) > 1 else allowed[-1]


def pin_to_one_cpu(enabled: bool) -> str:
    """Pin the whole process to one CPU. May re-exec (never returns then)."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        return "not pinned"
    if os.environ.get(_PIN_ENV):
        aff = sorted(os.sched_getaffinity(0))
        how = os.environ[_PIN_ENV]
        return f"cpu {','.join(map(str, aff))} ({how})"
    cpu = _pick_cpu()
    taskset = shutil.which("taskset")
    orig = getattr(sys, "orig_argv", None)
    if taskset and orig:
        env = dict(os.environ)
        env[_PIN_ENV] = f"taskset -c {cpu}"
        argv = [taskset, "-c", str(cpu), sys.executable, *orig[1:]]
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(taskset, argv, env)
        except OSError:
            pass  # fall through to sched_setaffinity
    os.sched_setaffinity(0, {cpu})
    os.environ[_PIN_ENV] = "sched_setaffinity"
    return f"cpu {cpu} (sched_setaffinity)"


def raise_nofile(needed: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft, hard
    target = hard if hard != resource.RLIM_INFINITY else max(needed, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _git_head(path: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            # dirty = uncommitted changes to the implementation itself
            dirty = subprocess.run(["git", "-C", path, "status", "--porcelain",
                                    "--untracked-files=no", "--", "reactor", "_native",
                                    "setup.py", "pyproject.toml"],
                                   capture_output=True, text=True, timeout=5)
            return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def machine_info(pinned: str, reactor_mod) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "pinned": pinned,
        "reactor_file": getattr(reactor_mod, "__file__", None),
        "reactor_version": getattr(reactor_mod, "__version__", None),
        "git": _git_head(here),
        "command": " ".join(getattr(sys, "orig_argv", sys.argv)),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------
# File descriptors
# --------------------------------------------------------------------------

class FdPool:
    """``count`` connected socketpairs.

    The read ends (the fds that get registered) are kept contiguous and low
    (so that N=1000 stays below FD_SETSIZE for SelectSelector); the write ends
    are moved above ``high_base``.  A read end is "ready" (readable) when its
    peer has written a byte into it; level-triggered selectors keep reporting
    it until it is drained, so readiness is stable across timed batches.
    """

    def __init__(self, count: int, high_base: int = 1100):
        import fcntl
        self.readers: list[socket.socket] = []
        self.writers: list[socket.socket] = []
        self.ready: list[bool] = []
        for _ in range(count):
            r, w = socket.socketpair()
            hi = fcntl.fcntl(w.fileno(), fcntl.F_DUPFD_CLOEXEC, high_base)
            w.close()
            w = socket.socket(fileno=hi)
            r.setblocking(False)
            w.setblocking(False)
            self.readers.append(r)
            self.writers.append(w)
            self.ready.append(False)
        self.fds = [r.fileno() for r in self.readers]

    def set_ready(self, indices) -> None:
        want = set(indices)
        for i in range(len(self.readers)):
            if i in want and not self.ready[i]:
                self.writers[i].send(b"x")
                self.ready[i] = True
            elif i not in want and self.ready[i]:
                try:
                    while self.readers[i].recv(4096):
                        pass
                except BlockingIOError:
                    pass
                self.ready[i] = False

    def close(self) -> None:
        for s in self.readers + self.writers:
            s.close()


# --------------------------------------------------------------------------
# Timed kernels.  Each takes (selector, n_ops, ctx) and returns elapsed ns for
# a batch of n_ops operations (the loop is the only per-op overhead, and it is
# identical for both implementations).
# --------------------------------------------------------------------------

def k_select(sel, n, ctx):
    select = sel.select
    t0 = perf_counter_ns()
    for _ in repeat(None, n):
        select(0)
    return perf_counter_ns() - t0


def k_register_unregister(sel, n, ctx):
    register, unregister = sel.register, sel.unregister
    fd = ctx["extra_fd"]
    t0 = perf_counter_ns()
    for _ in repeat(None, n):
        register(fd, EVENT_READ)
        unregister(fd)
    return perf_counter_ns() - t0


def k_modify_mask(sel, n, ctx):
    # one op = one modify(); the loop body does two (READ|WRITE, then READ)
    modify = sel.modify
    fd = ctx["target_fd"]
    rw = EVENT_READ | EVENT_WRITE
    data = ctx["data"]
    t0 = perf_counter_ns()
    for _ in repeat(None, n // 2):
        modify(fd, rw, data)
        modify(fd, EVENT_READ, data)
    return perf_counter_ns() - t0


def k_modify_data(sel, n, ctx):
    modify = sel.modify
    fd = ctx["target_fd"]
    d1, d2 = ctx["data"], ctx["data2"]
    t0 = perf_counter_ns()
    for _ in repeat(None, n // 2):
        modify(fd, EVENT_READ, d1)
        modify(fd, EVENT_READ, d2)
    return perf_counter_ns() - t0


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def _quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def _summary(per_op):
    q1, q3 = _quartiles(per_op)
    return {
        "median": statistics.median(per_op),
        "min": min(per_op),
        "max": max(per_op),
        "q1": q1,
        "q3": q3,
    }


# --------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------

class SanityError(AssertionError):
    pass


class Bench:
    def __init__(self, reactor_mod, rounds: int, batch_ns: int, warmup: int,
                 verbose: bool = True):
        self.reactor = reactor_mod
        self.rounds = rounds
        self.batch_ns = batch_ns
        self.warmup = warmup
        self.verbose = verbose
        self.results: list[dict] = []
        self.errors: list[str] = []

    def log(self, msg):
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    # ---- timing core ----------------------------------------------------
    @staticmethod
    def _timed(kernel, sel, n, ctx):
        gc_was = gc.isenabled()
        gc.disable()
        try:
            return kernel(sel, n, ctx)
        finally:
            if gc_was:
                gc.enable()

    def _calibrate(self, kernel, sels, ctx, min_ops=2):
        """Smallest (power-of-two-ish) op count whose slowest batch >= batch_ns."""
        n = min_ops
        while True:
            worst = max(self._timed(kernel, s, n, ctx) for s in sels)
            if worst >= self.batch_ns or n >= 1 << 24:
                break
            # aim directly at the target, but at most x8 per step
            scale = self.batch_ns / max(worst, 1)
            n = max(n * 2, min(int(n * scale * 1.1) + 1, n * 8))
        return max(min_ops, n + (n & 1))  # even: two-op loop bodies

    def run_case(self, *, case, backend, n, ready, kernel, ours, stdlib, ctx,
                 target=None, note=""):
        label = f"{case} {backend} N={n}" + (f" ready={ready}" if ready is not None else "")
        self.log(f"  {label} ...")
        sels = (ours, stdlib)
        ops = self._calibrate(kernel, sels, ctx)
        for _ in range(self.warmup):
            for s in sels:
                self._timed(kernel, s, ops, ctx)
        t_ours, t_std = [], []
        for rnd in range(self.rounds):
            gc.collect()
            order = (0, 1) if rnd % 2 == 0 else (1, 0)  # ABAB..., alternating first
            for which in order:
                dt = self._timed(kernel, sels[which], ops, ctx)
                (t_ours if which == 0 else t_std).append(dt / ops)
        # Headline ratio: median of the per-round paired ratios (each pair was
        # timed back to back, so slow drift in machine speed cancels out).
        paired = [s / o for o, s in zip(t_ours, t_std)]
        so, ss = _summary(t_ours), _summary(t_std)
        ratio = statistics.median(paired)
        rq1, rq3 = _quartiles(paired)
        if target is None:
            verdict = None
        elif ratio >= target:
            verdict = "met"
        elif rq3 >= target:
            verdict = "missed (within noise)"
        else:
            verdict = "MISSED"
        res = {
            "case": case,
            "backend": backend,
            "n": n,
            "ready": ready,
            "ops_per_batch": ops,
            "rounds": self.rounds,
            "ours_ns": so,
            "stdlib_ns": ss,
            "ratio": ratio,
            "ratio_of_medians": ss["median"] / so["median"],
            "ratio_q1": rq1,
            "ratio_q3": rq3,
            "ratio_min": min(paired),
            "ratio_max": max(paired),
            "target": target,
            "met": None if target is None else ratio >= target,
            "verdict": verdict,
            "note": note,
        }
        self.results.append(res)
        return res

    # ---- selector helpers ----------------------------------------------
    def make_pair(self, backend):
        name = backend + "Selector"
        ours_cls = getattr(self.reactor, name, None)
        std_cls = getattr(selectors, name, None)
        if ours_cls is None or std_cls is None:
            return None
        return ours_cls(), std_cls()

    @staticmethod
    def _result_set(sel_result):
        return sorted((key.fd, ev) for key, ev in sel_result)

    def _check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
            raise SanityError(msg)

    # ---- cases ------------------------------------------------------------
    def bench_select(self, pool: FdPool, backend: str, sizes):
        for n in sizes:
            fds = pool.fds[:n]
            if backend == "Select" and max(fds) >= FD_SETSIZE:
                self.log(f"  skip Select N={n}: fd {max(fds)} >= {FD_SETSIZE}")
                continue
            pair = self.make_pair(backend)
            if pair is None:
                self.errors.append(f"{backend}Selector missing")
                return
            ours, std = pair
            try:
                for i, fd in enumerate(fds):
                    ours.register(fd, EVENT_READ, i)
                    std.register(fd, EVENT_READ, i)
                readies = [1] if n == 1 else [1, n]
                for k in readies:
                    pool.set_ready(range(n - k, n))  # the last k registered
                    a = self._result_set(ours.select(0))
                    b = self._result_set(std.select(0))
                    self._check(a == b and len(a) == k,
                                f"select mismatch {backend} N={n} ready={k}: "
                                f"ours {len(a)} vs stdlib {len(b)} events")
                    index = {fd: i for i, fd in enumerate(fds)}
                    self._check(all(key.data == index[key.fd] for key, _ in ours.select(0)),
                                f"select {backend}: key.data mismatch")
                    target = None
                    if backend == "Epoll" and n == BIG_N:
                        target = 1.3 if k == 1 else 2.0
                    elif backend in ("Poll", "Select"):
                        target = 1.0
                    self.run_case(case="select(0)", backend=backend, n=n, ready=k,
                                  kernel=k_select, ours=ours, stdlib=std, ctx={},
                                  target=target)
            finally:
                pool.set_ready(())
                ours.close()
                std.close()

    def _loaded_pair(self, pool, backend, n):
        pair = self.make_pair(backend)
        if pair is None:
            self.errors.append(f"{backend}Selector missing")
            return None
        for s in pair:
            for i, fd in enumerate(pool.fds[:n]):
                s.register(fd, EVENT_READ, i)
        return pair

    def bench_register_unregister(self, pool, backend, n=BIG_N):
        extra = pool.fds[n]
        if backend == "Select" and extra >= FD_SETSIZE:
            self.log(f"  skip Select register/unregister: fd {extra} >= {FD_SETSIZE}")
            return
        pair = self._loaded_pair(pool, backend, n)
        if pair is None:
            return
        ours, std = pair
        try:
            ctx = {"extra_fd": extra}
            target = 1.3 if backend == "Epoll" else None
            self.run_case(case="register+unregister", backend=backend, n=n, ready=None,
                          kernel=k_register_unregister, ours=ours, stdlib=std, ctx=ctx,
                          target=target)
            for s, who in ((ours, "ours"), (std, "stdlib")):
                self._check(len(s.get_map()) == n and extra not in s.get_map(),
                            f"register/unregister {backend} {who}: map size wrong")
        finally:
            ours.close()
            std.close()

    def bench_modify(self, pool, backend, n=BIG_N):
        target_fd = pool.fds[n // 2]
        if backend == "Select" and max(pool.fds[:n]) >= FD_SETSIZE:
            return
        pair = self._loaded_pair(pool, backend, n)
        if pair is None:
            return
        ours, std = pair
        try:
            d1, d2 = object(), object()
            for s in pair:
                s.modify(target_fd, EVENT_READ, d1)
            ctx = {"target_fd": target_fd, "data": d1, "data2": d2}
            self.run_case(case="modify(mask)", backend=backend, n=n, ready=None,
                          kernel=k_modify_mask, ours=ours, stdlib=std, ctx=ctx,
                          target=1.5 if backend == "Epoll" else None,
                          note="READ <-> READ|WRITE")
            for s, who in ((ours, "ours"), (std, "stdlib")):
                key = s.get_key(target_fd)
                self._check(key.events == EVENT_READ and key.data is d1,
                            f"modify(mask) {backend} {who}: key wrong after bench")
            self.run_case(case="modify(data)", backend=backend, n=n, ready=None,
                          kernel=k_modify_data, ours=ours, stdlib=std, ctx=ctx,
                          note="same mask, data alternates")
            for s, who in ((ours, "ours"), (std, "stdlib")):
                key = s.get_key(target_fd)
                self._check(key.events == EVENT_READ and key.data is d2,
                            f"modify(data) {backend} {who}: key.data not updated")
        finally:
            ours.close()
            std.close()


# --------------------------------------------------------------------------
# strace check: data-only modify must not call epoll_ctl
# --------------------------------------------------------------------------

_STRACE_SCRIPT = r"""
import sys, socket, selectors
impl, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
if impl == "reactor":
    import reactor as m
else:
    m = selectors
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
a, b = socket.socketpair()
fd = a.fileno()
sel = m.EpollSelector()
sel.register(fd, R, None)
sel.select(0)
d = [object(), object()]
for i in range(k):
    if mode == "data":
        sel.modify(fd, R, d[i & 1])
    else:
        sel.modify(fd, R | W if i % 2 == 0 else R, None)
    sel.select(0)  # flush any deferred change a lazy implementation might batch
key = sel.get_key(fd)
if mode == "data" and k:
    assert key.data is d[(k - 1) & 1], "data not updated"
sel.unregister(fd)
sel.close()
"""


def _count_epoll_ctl(impl: str, mode: str, k: int, cwd: str) -> int:
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "strace.txt")
        cmd = ["strace", "-f", "-c", "-e", "trace=epoll_ctl", "-o", out,
               sys.executable, "-c", _STRACE_SCRIPT, impl, mode, str(k)]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            if "ptrace" in proc.stderr.lower() and "strace:" in proc.stderr:
                raise PermissionError(f"strace cannot trace here: {proc.stderr.strip()[-300:]}")
            raise RuntimeError(f"strace run failed ({proc.returncode}): "
                               f"{proc.stderr.strip()[-800:]}")
        calls = 0
        with open(out) as f:
            for line in f:
                parts = line.split()
                if parts and parts[-1] == "epoll_ctl" and len(parts) >= 5:
                    calls = int(parts[3])
        return calls


def strace_check() -> dict:
    """Count epoll_ctl syscalls for K data-only modifies, K in (small, large)."""
    res = {"tool": "strace -f -c -e trace=epoll_ctl", "status": "skipped"}
    if not shutil.which("strace"):
        res["reason"] = "strace not installed"
        return res
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    small, large = 10, 1000
    counts = {}
    try:
        for impl in ("reactor", "stdlib"):
            for mode in ("data", "mask"):
                for k in (small, large):
                    counts[f"{impl}/{mode}/{k}"] = _count_epoll_ctl(impl, mode, k, cwd)
    except PermissionError as exc:  # strace present but not allowed to ptrace
        res["reason"] = str(exc)
        return res
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        res["status"] = "ERROR"
        res["reason"] = f"{type(exc).__name__}: {exc}"
        return res
    res["counts"] = counts
    res["k_small"], res["k_large"] = small, large
    data_growth = counts[f"reactor/data/{large}"] - counts[f"reactor/data/{small}"]
    mask_growth = counts[f"reactor/mask/{large}"] - counts[f"reactor/mask/{small}"]
    res["reactor_data_growth"] = data_growth
    res["reactor_mask_growth"] = mask_growth
    # control: mask-changing modifies must be visible to strace, otherwise the
    # data-only figure proves nothing.
    res["control_ok"] = mask_growth >= (large - small) // 2
    res["passed"] = data_growth <= 0 and res["control_ok"]
    res["status"] = "passed" if res["passed"] else "FAILED"
    return res


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------

def _fmt_ns(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _target_str(r):
    if r["target"] is None:
        return "-"
    return f">={r['target']:.1f}x {r['verdict']}"


HEADERS = ("case", "backend", "N", "ready", "ours ns/op", "stdlib ns/op",
           "ratio", "ratio IQR", "ours min-max", "stdlib min-max", "target")


def table_rows(results):
    rows = []
    for r in results:
        o, s = r["ours_ns"], r["stdlib_ns"]
        rows.append((
            r["case"], r["backend"], str(r["n"]),
            "-" if r["ready"] is None else str(r["ready"]),
            _fmt_ns(o["median"]), _fmt_ns(s["median"]),
            f"{r['ratio']:.2f}x",
            f"{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}",
            f"{_fmt_ns(o['min'])}-{_fmt_ns(o['max'])}",
            f"{_fmt_ns(s['min'])}-{_fmt_ns(s['max'])}",
            _target_str(r),
        ))
    return rows


def format_text_table(results) -> str:
    rows = [HEADERS] + table_rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {2, 3, 4, 5, 6, 7, 8, 9}
    lines = []
    for j, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(results) -> str:
    rows = table_rows(results)
    out = ["| " + " | ".join(HEADERS) + " |",
           "|" + "|".join("---:" if i in (2, 3, 4, 5, 6, 7, 8, 9) else "---"
                          for i in range(len(HEADERS))) + "|"]
    for row in rows:
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def format_strace(sc: dict) -> str:
    if sc.get("status") in ("skipped", "ERROR"):
        return (f"strace check (data-only modify => no epoll_ctl): {sc['status']} "
                f"({sc.get('reason')})")
    c = sc["counts"]
    ks, kl = sc["k_small"], sc["k_large"]
    lines = [f"strace check (data-only modify => no epoll_ctl): {sc['status']}",
             f"  epoll_ctl calls, {sc['tool']}  (K modifies, each followed by select(0)):"]
    for impl in ("reactor", "stdlib"):
        for mode in ("data", "mask"):
            lines.append(f"    {impl:7s} {mode:4s}-only modify: K={ks}: {c[f'{impl}/{mode}/{ks}']:5d}"
                         f"   K={kl}: {c[f'{impl}/{mode}/{kl}']:5d}")
    lines.append(f"  reactor data-only growth {ks}->{kl}: {sc['reactor_data_growth']} "
                 f"(must be <= 0); mask-change control growth: {sc['reactor_mask_growth']} "
                 f"({'ok' if sc['control_ok'] else 'strace did not see mask modifies!'})")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.selectors_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fast smoke run (few rounds, tiny batches)")
    p.add_argument("--json", metavar="PATH", help="write machine-readable results here")
    p.add_argument("--markdown", metavar="PATH", help="write the results table as markdown")
    p.add_argument("--rounds", type=int, help="timed rounds per case (default 25; quick 3)")
    p.add_argument("--batch-ms", type=float,
                   help="target duration of one timed batch (default 10; quick 0.3)")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help="comma list among Epoll,Poll,Select (default all)")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    p.add_argument("--no-strace", action="store_true", help="skip the strace syscall check")
    p.add_argument("--check-targets", action="store_true",
                   help="exit 1 if a performance target is missed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    pinned = pin_to_one_cpu(not args.no_pin)

    import reactor  # noqa: E402  (after re-exec, so the import is pinned too)
    if not hasattr(reactor, "EpollSelector"):
        print(f"error: {getattr(reactor, '__file__', reactor)!r} has no EpollSelector "
              "(is the extension built? `python setup.py build_ext --inplace`)",
              file=sys.stderr)
        return 2

    rounds = args.rounds or (3 if args.quick else 25)
    batch_ms = args.batch_ms or (0.3 if args.quick else 10.0)
    warmup = 0 if args.quick else 1
    backends = [b.strip().capitalize() for b in args.backends.split(",") if b.strip()]

    soft, hard = raise_nofile(4 * BIG_N + 256)
    pool = FdPool(BIG_N + 1)
    info = machine_info(pinned, reactor)
    info.update(rounds=rounds, batch_ms=batch_ms, warmup_rounds=warmup,
                quick=args.quick, nofile=[soft, hard],
                registered_fd_range=[pool.fds[0], pool.fds[-1]])
    for name in ("EVENT_READ", "EVENT_WRITE"):
        if hasattr(reactor, name) and getattr(reactor, name) != getattr(selectors, name):
            print(f"warning: reactor.{name} != selectors.{name}", file=sys.stderr)

    bench = Bench(reactor, rounds=rounds, batch_ns=int(batch_ms * 1e6), warmup=warmup,
                  verbose=not args.quiet)
    bench.log(f"reactor from {info['reactor_file']}; {pinned}; rounds={rounds} "
              f"batch={batch_ms}ms; registered fds {pool.fds[0]}..{pool.fds[-1]}")
    t_start = time.monotonic()
    try:
        for backend in backends:
            bench.log(f"[{backend}]")
            for fn, a in ((bench.bench_select, (SIZES,)),
                          (bench.bench_register_unregister, ()),
                          (bench.bench_modify, ())):
                try:
                    fn(pool, backend, *a)
                except SanityError as exc:
                    bench.log(f"  SANITY FAILURE: {exc}")
    finally:
        pool.close()

    sc = {"status": "skipped", "reason": "--no-strace"}
    if not args.no_strace and "Epoll" in backends:
        bench.log("[strace check]")
        sc = strace_check()
    info["elapsed_s"] = round(time.monotonic() - t_start, 1)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    # ---- report --------------------------------------------------------
    print(f"reactor vs stdlib selectors   ratio = stdlib time / ours  (>1: reactor faster)")
    print(f"date {info['date']} | nproc {info['nproc']} | kernel {info['kernel']} | "
          f"python {info['python']} | {pinned} | rounds {rounds} | "
          f"batch ~{batch_ms}ms | git {info['git']}")
    print("ns/op: median over rounds (min-max alongside); ratio: median of per-round "
          "paired ratios, with their IQR;\n'missed (within noise)': median below target "
          "but upper quartile of paired ratios at/above it\n")
    print(format_text_table(bench.results))
    print()
    print(format_strace(sc))
    with_target = [r for r in bench.results if r["target"] is not None]
    missed = [r for r in with_target if not r["met"]]
    print(f"\ntargets: {len(with_target) - len(missed)}/{len(with_target)} met"
          + ("" if not missed else "; missed: " + ", ".join(
              f"{r['case']} {r['backend']} N={r['n']}"
              + (f" ready={r['ready']}" if r["ready"] is not None else "")
              + f" ({r['ratio']:.2f}x < {r['target']}x)" for r in missed)))
    if args.quick:
        print("(--quick: smoke run, figures are not meaningful)")
    if bench.errors:
        print("\nSANITY ERRORS:\n  " + "\n  ".join(bench.errors))
    print(f"elapsed {info['elapsed_s']}s; loadavg start {info['loadavg_start']} "
          f"end {info['loadavg_end']}")

    doc = {"meta": info, "results": bench.results, "strace_check": sc,
           "targets": {"total": len(with_target), "met": len(with_target) - len(missed)},
           "errors": bench.errors}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(format_markdown_table(bench.results) + "\n")

    if bench.errors or sc.get("status") in ("FAILED", "ERROR"):
        return 2
    if args.check_targets and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
