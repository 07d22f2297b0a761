"""Selector micro-benchmarks: reactor vs. the stdlib ``selectors`` module,
and both against the kernel.

Run from the repository root::

    python -m benchmarks.selectors_bench                  # full run (~1 min here)
    python -m benchmarks.selectors_bench --quick          # smoke run (seconds)
    python -m benchmarks.selectors_bench --json out.json  # + machine-readable

Every case times the same operation on ``reactor.<X>Selector`` ("ours") and on
``selectors.<X>Selector`` ("stdlib") in the same process, interleaved
(AB, BA, AB, ... over many rounds), each round being one timed batch of many
operations.  The cases run in ``--processes`` fresh interpreters in turn
(pyperf's method: calibration, a warm-up batch, then timed rounds in each
process), every one pinned to the same CPU.  Reported figures are medians
over all rounds of all processes of the per-operation time, with mean and
standard deviation beside them, and ``ratio = stdlib / ours`` (> 1: reactor
is faster), the median of the per-round *paired* ratios.

The raw syscall floor -- the same syscall over the same fds, timed from C
with no Python (``benchmarks/floor.c``, compiled at run time) -- runs after
each worker process, so every figure also reads as "x above the kernel".

Exit status: 0 normally; 2 when a correctness sanity check fails (ours and
stdlib disagree, or the strace check shows data-only modify making
syscalls); with ``--check-targets`` also 1 when a performance target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import repeat

from benchmarks._common import (BENCH_DIR, PY, ROOT, bench_cpus, compile_c, describe, log,
                                machine_info, pin_argv, pin_self, quartiles, raise_nofile)

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE
FD_SETSIZE = 1024  # select(2) limit, stdlib SelectSelector cannot go past it

BACKENDS = ("Epoll", "Poll", "Select")
SIZES = (1, 10, 100, 1000, 10000)       # select(0) with 1 and with all ready
SCALING_SIZES = (3, 30, 300, 3000)      # select(0) with 1 ready only: the scaling curve
BIG_N = 1000                            # registered fds for register/modify

perf_counter_ns = time.perf_counter_ns


# --------------------------------------------------------------------------
# File descriptors
# --------------------------------------------------------------------------

class FdPool:
    """``count`` socket ends: count/2 connected socketpairs, both ends used.

    Opened first, so they are the lowest fds and contiguous (N=1000 stays
    below FD_SETSIZE for the stdlib's SelectSelector), and N fds cost N, not
    2N, of RLIMIT_NOFILE.  fds[i] and fds[i ^ 1] are the two ends of one
    pair; fds[i] is "ready" (readable) when fds[i ^ 1] has sent it a byte,
    and level-triggered selectors keep reporting it until it is drained, so
    readiness is stable across timed batches.  benchmarks/floor.c lays its
    fds out the same way.
    """

    def __init__(self, count: int):
        self.socks: list[socket.socket] = []
        for _ in range((count + 1) // 2):
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            self.socks += [a, b]
        self.fds = [s.fileno() for s in self.socks]
        self.ready = [False] * len(self.socks)

    def set_ready(self, indices) -> None:
        want = set(indices)
        for i, sock in enumerate(self.socks):
            if i in want and not self.ready[i]:
                self.socks[i ^ 1].send(b"x")
                self.ready[i] = True
            elif i not in want and self.ready[i]:
                try:
                    while sock.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                self.ready[i] = False

    def close(self) -> None:
        for s in self.socks:
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
# One worker process: every case, ours and stdlib interleaved
# --------------------------------------------------------------------------

class SanityError(AssertionError):
    pass


# Where a case has no stdlib counterpart: the reason, shown in every table.
STDLIB_SELECT_LIMIT = (f"n/a: the stdlib's SelectSelector refuses fds >= {FD_SETSIZE} "
                       "(ValueError); reactor's is measured alone")


def _target(case, backend, n, ready):
    if case == "select(0)":
        if backend == "Epoll" and n == BIG_N:
            return 1.3 if ready == 1 else 2.0
        if backend in ("Poll", "Select") and n in SIZES and n <= BIG_N:
            return 1.0
        return None
    if backend == "Epoll" and n == BIG_N:
        return {"register+unregister": 1.3, "modify(mask)": 1.5}.get(case)
    return None


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
            log(msg)

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
                 note="", stdlib_reason=None):
        """Time ``kernel`` on ours and (when not None) stdlib, interleaved;
        records the per-round ns/op of both."""
        label = f"{case} {backend} N={n}" + (f" ready={ready}" if ready is not None else "")
        self.log(f"  {label} ...")
        sels = (ours,) if stdlib is None else (ours, stdlib)
        ops = self._calibrate(kernel, sels, ctx)
        for _ in range(self.warmup):
            for s in sels:
                self._timed(kernel, s, ops, ctx)
        t_ours, t_std = [], []
        for rnd in range(self.rounds):
            gc.collect()
            order = (0, 1) if rnd % 2 == 0 else (1, 0)  # ABAB..., alternating first
            for which in order:
                if which < len(sels):
                    dt = self._timed(kernel, sels[which], ops, ctx)
                    (t_ours if which == 0 else t_std).append(dt / ops)
        self.results.append({
            "case": case, "backend": backend, "n": n, "ready": ready,
            "ops_per_batch": ops, "note": note, "stdlib_reason": stdlib_reason,
            "ours_rounds": t_ours, "stdlib_rounds": t_std if stdlib is not None else None,
        })

    # ---- selector helpers ----------------------------------------------
    def make_pair(self, backend, with_stdlib=True):
        name = backend + "Selector"
        ours_cls = getattr(self.reactor, name, None)
        std_cls = getattr(selectors, name, None)
        if ours_cls is None or std_cls is None:
            self.errors.append(f"{name} missing")
            return None
        return ours_cls(), (std_cls() if with_stdlib else None)

    @staticmethod
    def _result_set(sel_result):
        return sorted((key.fd, ev) for key, ev in sel_result)

    def _check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
            raise SanityError(msg)

    # ---- cases ------------------------------------------------------------
    def bench_select(self, pool: FdPool, backend: str, sizes, scaling_sizes=()):
        plan = sorted([(n, [1] if n == 1 else [1, n]) for n in sizes] +
                      [(n, [1]) for n in scaling_sizes if n not in sizes])
        for n, readies in plan:
            fds = pool.fds[:n]
            std_ok = not (backend == "Select" and max(fds) >= FD_SETSIZE)
            pair = self.make_pair(backend, with_stdlib=std_ok)
            if pair is None:
                return
            sels = [s for s in pair if s is not None]
            try:
                for s in sels:
                    for i, fd in enumerate(fds):
                        s.register(fd, EVENT_READ, i)
                for k in readies:
                    pool.set_ready(range(n - k, n))  # the last k registered
                    want = sorted((fd, EVENT_READ) for fd in fds[n - k:])
                    for s in sels:
                        got = self._result_set(s.select(0))
                        self._check(got == want, f"select {type(s).__module__} {backend} N={n} "
                                                 f"ready={k}: {len(got)} events, want {k}")
                    index = {fd: i for i, fd in enumerate(fds)}
                    self._check(all(key.data == index[key.fd] for key, _ in pair[0].select(0)),
                                f"select {backend}: key.data mismatch")
                    self.run_case(case="select(0)", backend=backend, n=n, ready=k,
                                  kernel=k_select, ours=pair[0], stdlib=pair[1], ctx={},
                                  stdlib_reason=None if std_ok else STDLIB_SELECT_LIMIT)
            finally:
                pool.set_ready(())
                for s in sels:
                    s.close()

    def _loaded_pair(self, pool, backend, n):
        pair = self.make_pair(backend)
        if pair is not None:
            for s in pair:
                for i, fd in enumerate(pool.fds[:n]):
                    s.register(fd, EVENT_READ, i)
        return pair

    def bench_register_unregister(self, pool, backend, n=BIG_N):
        extra = pool.fds[n]
        pair = self._loaded_pair(pool, backend, n)
        if pair is None:
            return
        ours, std = pair
        try:
            self.run_case(case="register+unregister", backend=backend, n=n, ready=None,
                          kernel=k_register_unregister, ours=ours, stdlib=std,
                          ctx={"extra_fd": extra})
            for s, who in ((ours, "ours"), (std, "stdlib")):
                self._check(len(s.get_map()) == n and extra not in s.get_map(),
                            f"register/unregister {backend} {who}: map size wrong")
        finally:
            ours.close()
            std.close()

    def bench_modify(self, pool, backend, n=BIG_N):
        target_fd = pool.fds[n // 2]
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


def worker_main(args) -> int:
    """One fresh, pinned interpreter: run every case, write the raw rounds."""
    pinned = pin_self(not args.no_pin)
    import reactor  # after the re-exec, so the import is pinned too
    sizes, scaling = args.size_list, args.scaling_list
    pool_size = max([BIG_N + 1, *sizes, *scaling])
    soft, hard = raise_nofile(pool_size + 256)
    pool = FdPool(pool_size)
    bench = Bench(reactor, rounds=args.rounds, batch_ns=int(args.batch_ms * 1e6),
                  warmup=args.warmup, verbose=not args.quiet)
    t0 = time.monotonic()
    try:
        for backend in args.backend_list:
            for fn, extra in ((bench.bench_select, (sizes, scaling)),
                              (bench.bench_register_unregister, ()),
                              (bench.bench_modify, ())):
                try:
                    fn(pool, backend, *extra)
                except SanityError as exc:
                    bench.log(f"  SANITY FAILURE: {exc}")
    finally:
        pool.close()
    doc = {"pinned": pinned, "nofile": [soft, hard], "elapsed_s": time.monotonic() - t0,
           "registered_fd_range": [pool.fds[0], pool.fds[-1]],
           "reactor_file": reactor.__file__, "results": bench.results, "errors": bench.errors}
    with open(args.worker, "w") as f:
        json.dump(doc, f)
    return 2 if bench.errors else 0


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
    cwd = ROOT
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
# The kernel floor (benchmarks/floor.c) and the aggregation over processes
# --------------------------------------------------------------------------

# (case, backend) -> the floor.c mode timing the syscall(s) that one op makes
FLOOR_MODES = {
    ("select(0)", "Epoll"): "epoll_wait",
    ("select(0)", "Poll"): "poll",
    ("select(0)", "Select"): "select",
    ("register+unregister", "Epoll"): "epoll_add_del",
    ("modify(mask)", "Epoll"): "epoll_mod",
}
FLOOR_LABELS = {
    "epoll_wait": "epoll_wait(maxevents=N, timeout 0)",
    "poll": "poll(N pollfds, timeout 0)",
    "select": "select(maxfd+1, copy of the read set, timeout 0)",
    "epoll_add_del": "epoll_ctl ADD + DEL",
    "epoll_mod": "epoll_ctl MOD",
}
NO_SYSCALL = "no syscall (bookkeeping only)"


def floor_case(r) -> str | None:
    mode = FLOOR_MODES.get((r["case"], r["backend"]))
    if mode is None:
        return None
    return f"{mode}:{r['n']}:{r['ready']}" if r["ready"] is not None else f"{mode}:{r['n']}"


def build_floor(log=log) -> str:
    return compile_c(os.path.join(BENCH_DIR, "floor.c"), "floor", log)[0]


def run_floor(binary: str, cases, rounds: int, batch_ms: float, cpu: int | None) -> dict:
    """case -> per-round ns/op, from one fresh floor process."""
    argv = [binary, str(rounds), str(int(batch_ms * 1e6)), *cases]
    if cpu is not None:
        argv, preexec = pin_argv(cpu, argv)
    else:
        preexec = None
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, preexec_fn=preexec)
    if proc.returncode != 0:
        raise RuntimeError(f"floor failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    out = {}
    for line in proc.stdout.splitlines():
        d = json.loads(line)
        key = f"{d['case']}:{d['n']}" + (f":{d['ready']}" if d["ready"] >= 0 else "")
        out[key] = d["ns_per_op"]
    return out


def aggregate(docs: list[dict], floors: list[dict]) -> list[dict]:
    """Merge the rounds of every worker process (and floor process) per case."""
    by_case: dict[tuple, list[dict]] = {}
    for doc in docs:
        for r in doc["results"]:
            by_case.setdefault((r["case"], r["backend"], r["n"], r["ready"]), []).append(r)
    out = []
    for (case, backend, n, ready), rs in by_case.items():
        ours = [x for r in rs for x in r["ours_rounds"]]
        res = {"case": case, "backend": backend, "n": n, "ready": ready, "note": rs[0]["note"],
               "processes": len(rs), "rounds": len(ours),
               "ops_per_batch": [r["ops_per_batch"] for r in rs],
               "ours_ns": describe(ours), "stdlib_ns": None, "ratio": None,
               "stdlib_reason": rs[0]["stdlib_reason"]}
        if rs[0]["stdlib_rounds"] is not None:
            std = [x for r in rs for x in r["stdlib_rounds"]]
            # paired: each stdlib batch against the ours batch timed next to it
            per_proc = [[s / o for o, s in zip(r["ours_rounds"], r["stdlib_rounds"])] for r in rs]
            paired = [x for p in per_proc for x in p]
            q1, q3 = quartiles(paired)
            res.update(stdlib_ns=describe(std), ratio=statistics.median(paired),
                       ratio_q1=q1, ratio_q3=q3, ratio_min=min(paired), ratio_max=max(paired),
                       ratio_of_medians=statistics.median(std) / statistics.median(ours),
                       ratio_per_process=[statistics.median(p) for p in per_proc])
        fc = floor_case(res)
        res["floor_case"] = fc
        vals = [x for f in floors for x in f.get(fc, ())] if fc else []
        if vals:
            res["floor_ns"] = describe(vals)
            res["floor_op"] = FLOOR_LABELS[fc.split(":")[0]]
            res["ours_x_floor"] = res["ours_ns"]["median"] / res["floor_ns"]["median"]
            if res["stdlib_ns"]:
                res["stdlib_x_floor"] = res["stdlib_ns"]["median"] / res["floor_ns"]["median"]
        else:
            res["floor_ns"] = None
            res["floor_reason"] = NO_SYSCALL if fc is None else "floor not run"
        target = _target(case, backend, n, ready) if res["ratio"] is not None else None
        res["target"] = target
        if target is not None:
            res["met"] = res["ratio"] >= target
            res["verdict"] = ("met" if res["met"] else
                              "missed (within noise)" if res["ratio_q3"] >= target else "MISSED")
        out.append(res)
    return out


def measure(*, processes: int, rounds: int, batch_ms: float, warmup: int, sizes, scaling_sizes,
            backends, pin: bool = True, floor: bool = True, verbose: bool = True) -> dict:
    """Run the cases in ``processes`` fresh pinned interpreters, each followed
    by a floor process on the same CPU; returns the aggregated results."""
    say = log if verbose else (lambda msg: None)
    cpu = bench_cpus()[1] if pin else None
    floor_bin, floor_error = None, None
    if floor:
        try:
            floor_bin = build_floor(say)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            floor_error = str(exc)
            say(f"[selectors] no kernel floor: {exc}")
    docs, floors, errors = [], [], []
    with tempfile.TemporaryDirectory() as td:
        for i in range(processes):
            t0 = time.monotonic()
            path = os.path.join(td, f"w{i}.json")
            argv = [PY, "-m", "benchmarks.selectors_bench", "--worker", path,
                    "--rounds", str(rounds), "--batch-ms", str(batch_ms),
                    "--warmup", str(warmup), "--sizes", ",".join(map(str, sizes)),
                    "--scaling-sizes", ",".join(map(str, scaling_sizes)) or "none",
                    "--backends", ",".join(backends), "-q"] + ([] if pin else ["--no-pin"])
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
            if not os.path.exists(path):
                raise RuntimeError(f"selectors worker failed (exit {proc.returncode}): "
                                   f"{proc.stderr.strip()[-2000:]}")
            with open(path) as f:
                doc = json.load(f)
            docs.append(doc)
            errors += [e for e in doc["errors"] if e not in errors]
            msg = (f"[selectors] process {i + 1}/{processes}: {len(doc['results'])} cases "
                   f"in {time.monotonic() - t0:.1f} s")
            if floor_bin:
                t1 = time.monotonic()
                cases = [c for c in dict.fromkeys(floor_case(r) for r in doc["results"]) if c]
                try:
                    floors.append(run_floor(floor_bin, cases, rounds, batch_ms, cpu))
                    msg += f"; kernel floor {len(cases)} cases in {time.monotonic() - t1:.1f} s"
                except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                    floor_error = str(exc)
                    msg += f"; kernel floor FAILED: {exc}"
            say(msg)
    return {"config": {"processes": processes, "rounds_per_process": rounds, "batch_ms": batch_ms,
                       "warmup_batches": warmup, "sizes": list(sizes),
                       "scaling_sizes": list(scaling_sizes), "backends": list(backends),
                       "pinned": docs[0]["pinned"] if docs else None,
                       "registered_fd_range": docs[0]["registered_fd_range"] if docs else None,
                       "nofile": docs[0]["nofile"] if docs else None},
            "floor": {"binary": floor_bin, "error": floor_error,
                      "source": "benchmarks/floor.c"},
            "results": aggregate(docs, floors), "errors": errors}


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------

def fmt_ns(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _target_str(r):
    if r.get("target") is None:
        return "-"
    return f">={r['target']:.1f}x {r['verdict']}"


HEADERS = ("case", "backend", "N", "ready", "ours ns/op", "stdlib ns/op", "ratio",
           "ratio IQR", "kernel ns/op", "ours/kernel", "stdlib/kernel",
           "ours mean±sd", "stdlib mean±sd", "target")
_RIGHT = set(range(2, 13))


def table_rows(results):
    rows = []
    for r in results:
        o, s, f = r["ours_ns"], r["stdlib_ns"], r["floor_ns"]
        rows.append((
            r["case"], r["backend"], str(r["n"]),
            "-" if r["ready"] is None else str(r["ready"]),
            fmt_ns(o["median"]),
            fmt_ns(s["median"]) if s else "n/a",
            f"{r['ratio']:.2f}x" if s else "n/a",
            f"{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}" if s else "-",
            fmt_ns(f["median"]) if f else "-",
            f"{r['ours_x_floor']:.2f}x" if f else "-",
            f"{r['stdlib_x_floor']:.2f}x" if f and s else "-",
            f"{fmt_ns(o['mean'])}±{fmt_ns(o['stdev'])}",
            f"{fmt_ns(s['mean'])}±{fmt_ns(s['stdev'])}" if s else "-",
            _target_str(r),
        ))
    return rows


def format_text_table(results) -> str:
    rows = [HEADERS] + table_rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = []
    for j, row in enumerate(rows):
        cells = [c.rjust(w) if i in _RIGHT else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(results) -> str:
    out = ["| " + " | ".join(HEADERS) + " |",
           "|" + "|".join("---:" if i in _RIGHT else "---" for i in range(len(HEADERS))) + "|"]
    for row in table_rows(results):
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def notes(results) -> list[str]:
    """Why a column is empty, once per reason."""
    out = []
    if any(r["stdlib_ns"] is None for r in results):
        out.append("stdlib n/a: " + STDLIB_SELECT_LIMIT.split(": ", 1)[1])
    if any(r["floor_ns"] is None and r.get("floor_reason") == NO_SYSCALL for r in results):
        out.append("kernel '-': the operation makes " + NO_SYSCALL + " (poll/select keep "
                   "their interest sets in user space; a data-only modify() changes no mask)")
    return out


def targets_line(results) -> str:
    with_target = [r for r in results if r.get("target") is not None]
    missed = [r for r in with_target if not r["met"]]
    return (f"targets: {len(with_target) - len(missed)}/{len(with_target)} met"
            + ("" if not missed else "; missed: " + ", ".join(
                f"{r['case']} {r['backend']} N={r['n']}"
                + (f" ready={r['ready']}" if r["ready"] is not None else "")
                + f" ({r['ratio']:.2f}x < {r['target']}x)" for r in missed)))


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

def _int_list(text: str) -> list[int]:
    return [] if text in ("", "none") else [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.selectors_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fast smoke run (1 process, 3 rounds, tiny batches)")
    p.add_argument("--json", metavar="PATH", help="write machine-readable results here")
    p.add_argument("--markdown", metavar="PATH", help="write the results table as markdown")
    p.add_argument("--processes", type=int, help="fresh worker processes (default 3; quick 1)")
    p.add_argument("--rounds", type=int,
                   help="timed rounds per case and process (default 10; quick 3)")
    p.add_argument("--batch-ms", type=float,
                   help="target duration of one timed batch (default 10; quick 0.3)")
    p.add_argument("--warmup", type=int, help="warm-up batches per case (default 1; quick 0)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="registered fds for select(0) with 1 and with all ready "
                        "(default %(default)s)")
    p.add_argument("--scaling-sizes", default=",".join(map(str, SCALING_SIZES)),
                   help="more sizes with 1 ready, for the scaling curve (default %(default)s; "
                        "'none' for none)")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help="comma list among Epoll,Poll,Select (default all)")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    p.add_argument("--no-floor", action="store_true", help="skip the C syscall floor")
    p.add_argument("--no-strace", action="store_true", help="skip the strace syscall check")
    p.add_argument("--check-targets", action="store_true",
                   help="exit 1 if a performance target is missed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--worker", metavar="PATH", help=argparse.SUPPRESS)  # one process's rounds
    args = p.parse_args(argv)
    q = args.quick
    args.processes = args.processes or (1 if q else 3)
    args.rounds = args.rounds or (3 if q else 10)
    args.batch_ms = args.batch_ms or (0.3 if q else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0 if q else 1)
    args.size_list = _int_list(args.sizes)
    args.scaling_list = _int_list(args.scaling_sizes)
    args.backend_list = [b.strip().capitalize() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in args.backend_list if b not in BACKENDS]
    if bad or not args.size_list or min(args.size_list + args.scaling_list) < 1:
        p.error("--backends among Epoll,Poll,Select; --sizes: positive integers")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    say = (lambda msg: None) if args.quiet else log
    info = machine_info()
    info["quick"] = args.quick
    say(f"[selectors] {args.processes} process(es) x {args.rounds} rounds, "
        f"~{args.batch_ms} ms batches")
    doc = measure(processes=args.processes, rounds=args.rounds, batch_ms=args.batch_ms,
                  warmup=args.warmup, sizes=args.size_list, scaling_sizes=args.scaling_list,
                  backends=args.backend_list, pin=not args.no_pin, floor=not args.no_floor,
                  verbose=not args.quiet)
    sc = {"status": "skipped", "reason": "--no-strace"}
    if not args.no_strace and "Epoll" in args.backend_list:
        say("[selectors] strace check")
        sc = strace_check()
    results = doc["results"]
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    cfg = doc["config"]
    print("reactor vs stdlib selectors   ratio = stdlib time / ours  (>1: reactor faster)")
    print(f"date {info['date']} | {info['cpu_model']} | nproc {info['nproc']} | kernel "
          f"{info['kernel']} | python {info['python']} | {cfg['pinned']} | {args.processes} "
          f"process(es) x {args.rounds} rounds | batch ~{args.batch_ms}ms | git {info['git']}")
    print("ns/op: median over all rounds of all processes (mean±sd alongside); ratio: median "
          "of per-round\npaired ratios, with their IQR; kernel: the same syscall timed from C "
          "(benchmarks/floor.c)\n")
    print(format_text_table(results))
    for line in notes(results):
        print(line)
    print()
    print(format_strace(sc))
    print("\n" + targets_line(results))
    if args.quick:
        print("(--quick: smoke run, figures are not meaningful)")
    if doc["errors"]:
        print("\nSANITY ERRORS:\n  " + "\n  ".join(doc["errors"]))

    doc.update(meta=info, strace_check=sc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(format_markdown_table(results) + "\n")

    if doc["errors"] or sc.get("status") in ("FAILED", "ERROR"):
        return 2
    if args.check_targets and any(r.get("met") is False for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
