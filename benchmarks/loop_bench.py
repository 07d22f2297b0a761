"""Loop dispatch: reactor.Reactor vs asyncio (on the stdlib's selector and on
reactor's) vs uvloop.

Run from the repository root::

    python -m benchmarks.loop_bench             # ~15 s here
    python -m benchmarks.loop_bench --quick     # smoke run

Three benchmarks, each on a fresh loop of every implementation:

* ``chain``: a callback that schedules the next one with ``call_soon``,
  N times in a row; figure: wall ns per callback.
* ``timers``: N timers scheduled with ``call_later`` at random delays below
  1 ms, then the loop runs until the last has fired; figure: the thread's
  CPU ns per timer, scheduling and firing together (CPU time, so the loop's
  sleep until a timer is due does not count).
* ``wakeups``: another thread calls ``call_soon_threadsafe(cb)`` and waits
  until ``cb`` has run on the loop, N times; every call wakes a loop blocked
  in its poller.  Figure: wall ns per round trip (so 1e9 / figure wakeups
  per second).  Both threads share the pinned CPU.

Like ``selectors_bench``, the rounds run in ``--processes`` fresh pinned
interpreters; within a round every implementation runs once, in an order
that rotates from round to round.  Figures are medians over all rounds with
mean and stdev beside them; ``x reactor`` is the median of the per-round
paired ratios (implementation / reactor: > 1 means reactor is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks._common import PY, ROOT, describe, log, machine_info, pin_self, quartiles

IMPLS = ("reactor", "asyncio", "asyncio-reactor", "uvloop")
IMPL_DESCRIPTIONS = {
    "reactor": "reactor.Reactor()",
    "asyncio": "asyncio.new_event_loop() (stdlib selector)",
    "asyncio-reactor": "reactor.new_event_loop() (asyncio on reactor's selector)",
    "uvloop": "uvloop.new_event_loop()",
}
BENCHES = {
    "chain": "chained call_soon: wall time per callback",
    "timers": "call_later, random delays < 1 ms: CPU time per timer, schedule + fire",
    "wakeups": "call_soon_threadsafe from another thread: wall time per round trip",
}
# N per benchmark: full, quick, smoke
COUNTS = {
    "chain": (100_000, 10_000, 1_000),
    "timers": (10_000, 2_000, 200),
    "wakeups": (2_000, 300, 50),
}


def uvloop_missing() -> str | None:
    try:
        import uvloop  # noqa: F401
    except ImportError as exc:
        return f"not installed ({exc}); pip install uvloop, or the 'bench' extra"
    return None


def make_loop(impl: str):
    """(loop, run-until-stop callable) for one implementation."""
    if impl == "reactor":
        import reactor
        loop = reactor.Reactor()
        return loop, loop.run
    if impl == "asyncio":
        loop = asyncio.new_event_loop()
    elif impl == "asyncio-reactor":
        import reactor
        loop = reactor.new_event_loop()
    elif impl == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        raise ValueError(impl)
    return loop, loop.run_forever


def bench_chain(impl: str, n: int) -> float:
    loop, run = make_loop(impl)
    left = n
    call_soon, stop = loop.call_soon, loop.stop

    def step():
        nonlocal left
        left -= 1
        if left:
            call_soon(step)
        else:
            stop()
    try:
        call_soon(step)
        t0 = time.perf_counter_ns()
        run()
        return (time.perf_counter_ns() - t0) / n
    finally:
        loop.close()


def bench_timers(impl: str, n: int) -> float:
    loop, run = make_loop(impl)
    rng = random.Random(n)
    delays = [rng.random() * 1e-3 for _ in range(n)]
    fired = 0
    stop = loop.stop

    def fire():
        nonlocal fired
        fired += 1
        if fired == n:
            stop()
    try:
        call_later = loop.call_later
        t0 = time.thread_time_ns()
        for d in delays:
            call_later(d, fire)
        run()
        return (time.thread_time_ns() - t0) / n
    finally:
        loop.close()


def bench_wakeups(impl: str, n: int) -> float:
    loop, run = make_loop(impl)
    done = threading.Semaphore(0)
    release = done.release
    elapsed = []

    def pinger():
        threadsafe = loop.call_soon_threadsafe
        acquire = done.acquire
        time.sleep(0.01)  # let the loop block in its poller first
        t0 = time.perf_counter_ns()
        for _ in range(n):
            threadsafe(release)
            acquire()
        elapsed.append(time.perf_counter_ns() - t0)
        threadsafe(loop.stop)
    try:
        thread = threading.Thread(target=pinger)
        thread.start()
        run()
        thread.join()
        return elapsed[0] / n
    finally:
        loop.close()


BENCH_FUNCS = {"chain": bench_chain, "timers": bench_timers, "wakeups": bench_wakeups}


def worker_main(args) -> int:
    pinned = pin_self(not args.no_pin)
    values = {b: {i: [] for i in args.impl_list} for b in args.bench_list}
    for rnd in range(args.warmup + args.rounds):
        for bench in args.bench_list:
            k = rnd % len(args.impl_list)
            for impl in args.impl_list[k:] + args.impl_list[:k]:
                gc.collect()
                v = BENCH_FUNCS[bench](impl, args.counts[bench])
                if rnd >= args.warmup:
                    values[bench][impl].append(v)
    with open(args.worker, "w") as f:
        json.dump({"pinned": pinned, "values": values}, f)
    return 0


def aggregate(docs, benches, impls, base="reactor") -> dict:
    out = {}
    for bench in benches:
        out[bench] = {}
        for impl in impls:
            vals = [v for d in docs for v in d["values"][bench][impl]]
            row = {"ns": describe(vals)}
            if impl != base and base in impls:
                paired = [v / b for d in docs for v, b in zip(d["values"][bench][impl],
                                                               d["values"][bench][base])]
                q1, q3 = quartiles(paired)
                row.update(x_base=statistics.median(paired), x_base_q1=q1, x_base_q3=q3)
            out[bench][impl] = row
    return out


def measure(*, processes: int, rounds: int, warmup: int, counts: dict, impls=IMPLS,
            benches=tuple(BENCHES), pin: bool = True, verbose: bool = True) -> dict:
    say = log if verbose else (lambda msg: None)
    skipped = {}
    if "uvloop" in impls and uvloop_missing():
        skipped["uvloop"] = uvloop_missing()
        say(f"[loop] uvloop {skipped['uvloop']}: measured without it")
    impls = [i for i in impls if i not in skipped]
    docs = []
    with tempfile.TemporaryDirectory() as td:
        for p in range(processes):
            t0 = time.monotonic()
            path = os.path.join(td, f"w{p}.json")
            argv = [PY, "-m", "benchmarks.loop_bench", "--worker", path, "--rounds", str(rounds),
                    "--warmup", str(warmup), "--impls", ",".join(impls),
                    "--benches", ",".join(benches)]
            argv += [f"--{b}={counts[b]}" for b in benches] + ([] if pin else ["--no-pin"])
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0 or not os.path.exists(path):
                raise RuntimeError(f"loop worker failed (exit {proc.returncode}): "
                                   f"{proc.stderr.strip()[-2000:]}")
            with open(path) as f:
                docs.append(json.load(f))
            say(f"[loop] process {p + 1}/{processes}: {len(benches)} benchmarks x "
                f"{len(impls)} loops x {rounds} rounds in {time.monotonic() - t0:.1f} s")
    return {"config": {"processes": processes, "rounds_per_process": rounds,
                       "warmup_rounds": warmup, "counts": counts,
                       "pinned": docs[0]["pinned"] if docs else None},
            "impls": {i: IMPL_DESCRIPTIONS[i] for i in impls}, "skipped": skipped,
            "benches": dict(BENCHES), "results": aggregate(docs, benches, impls)}


def table_rows(doc) -> list[tuple]:
    rows = []
    for bench, by_impl in doc["results"].items():
        for impl, r in by_impl.items():
            ns = r["ns"]
            per_s = 1e9 / ns["median"]
            rows.append((bench, impl, f"{ns['median']:,.0f}",
                         f"{ns['mean']:,.0f}±{ns['stdev']:,.0f}", f"{per_s:,.0f}",
                         f"{r['x_base']:.2f}x ({r['x_base_q1']:.2f}-{r['x_base_q3']:.2f})"
                         if "x_base" in r else "-"))
        for impl, why in doc["skipped"].items():
            rows.append((bench, impl, why, "", "", ""))
    return rows


HEADERS = ("benchmark", "loop", "ns/op", "mean±sd", "ops/s", "x reactor (IQR)")


def format_markdown_table(doc) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|---|---|---:|---:|---:|---:|"]
    out += ["| " + " | ".join(r) + " |" for r in table_rows(doc)]
    return "\n".join(out)


def format_text_table(doc) -> str:
    rows = [HEADERS] + table_rows(doc)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.loop_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small counts, 1 process")
    p.add_argument("--processes", type=int, help="fresh worker processes (3; quick 1)")
    p.add_argument("--rounds", type=int, help="rounds per process (5; quick 2)")
    p.add_argument("--warmup", type=int, help="discarded rounds per process (1; quick 0)")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma list (default %(default)s)")
    p.add_argument("--benches", default=",".join(BENCHES), help="comma list (default %(default)s)")
    for b in BENCHES:
        p.add_argument(f"--{b}", type=int, metavar="N",
                       help=f"N for {b} (default {COUNTS[b][0]}; quick {COUNTS[b][1]})")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--worker", metavar="PATH", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.processes = args.processes or (1 if q else 3)
    args.rounds = args.rounds or (2 if q else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if q else 1)
    args.impl_list = [i for i in args.impls.split(",") if i]
    args.bench_list = [b for b in args.benches.split(",") if b]
    if set(args.impl_list) - set(IMPLS) or set(args.bench_list) - set(BENCHES):
        p.error(f"--impls among {','.join(IMPLS)}; --benches among {','.join(BENCHES)}")
    args.counts = {b: getattr(args, b) or COUNTS[b][1 if q else 0] for b in BENCHES}
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    info = machine_info()
    doc = measure(processes=args.processes, rounds=args.rounds, warmup=args.warmup,
                  counts=args.counts, impls=args.impl_list, benches=args.bench_list,
                  pin=not args.no_pin, verbose=not args.quiet)
    doc["meta"] = info
    print(f"loop dispatch   {info['date']} | {info['cpu_model']} | kernel {info['kernel']} | "
          f"python {info['python']} | {doc['config']['pinned']} | git {info['git']}")
    for bench, what in doc["benches"].items():
        print(f"  {bench}: {what}, N={args.counts[bench]}")
    print()
    print(format_text_table(doc))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
