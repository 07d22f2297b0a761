"""The whole benchmark suite in one command.

    python -m benchmarks [--quick] [--out DIR] [--sections selectors,echo,loop]

Run from the repository root.  Runs, in order, with progress on stderr:

1. ``selectors``: the selector micro-benchmarks (benchmarks/selectors_bench.py)
   with the C syscall floor, which also give the scaling curve;
2. ``echo``: every echo server under the compiled client, 1, 10 and 100 KiB
   messages at 1, 10 and 100 connections (benchmarks/echo_bench.py);
3. ``loop``: loop dispatch, Reactor vs asyncio vs uvloop (benchmarks/loop_bench.py);

then writes to DIR (default benchmarks/results/): ``results.json`` (every
figure and the machine), ``summary.md`` (the tables, with the command for
each section) and the PNG plots (``scaling.png``, ``echo_<size>.png``,
``loop.png``).  The full run takes about 7.5 minutes on 2 cores, ``--quick``
under a minute (its figures only show that everything runs); ``--smoke``,
smaller still, is what the test suite runs.

Each section is configured by the same arguments its own module takes, and
the summary gives that command, so a section can be rerun alone.  Exit
status: 0; 2 when a sanity check failed or an echo run failed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import signal
import time

from benchmarks import echo_bench, loop_bench, selectors_bench
from benchmarks._common import log, machine_info, run_cli, uvloop_version

# The arguments each section's own module is run with, per mode.  Budget for
# the full run (< 10 min on this 2-core machine): selectors ~1 min, echo
# ~6 min (8 servers x 9 cells x 2 runs of 0.3 + 1.5 s, 4 more runs of the
# 1 KiB x 100 headline cell, at most 45 s waiting for idle cores or re-running
# disturbed runs), loop ~0.5 min: ~7.5 min in all.
MODES = {
    "full": {
        "selectors": ["--processes", "5", "--rounds", "6", "--batch-ms", "5", "--warmup", "1"],
        "echo": ["--size", "1024,10240,102400", "--connections", "1,10,100", "--repeat", "2",
                 "--headline-repeat", "6", "--duration", "1.5", "--warmup", "0.3",
                 "--wait-idle", "2", "--idle-sample", "0.1", "--retry-busy", "1",
                 "--max-extra", "45"],
        "loop": ["--processes", "3", "--rounds", "5", "--warmup", "1"],
    },
    "quick": {
        "selectors": ["--processes", "2", "--rounds", "3", "--batch-ms", "1", "--warmup", "0",
                      "--no-strace"],
        "echo": ["--size", "1024,10240,102400", "--connections", "10", "--repeat", "1",
                 "--duration", "0.3", "--warmup", "0.1", "--wait-idle", "0",
                 "--idle-sample", "0.05", "--retry-busy", "0"],
        "loop": ["--quick"],
    },
    "smoke": {
        "selectors": ["--processes", "1", "--rounds", "2", "--batch-ms", "0.2", "--warmup", "0",
                      "--sizes", "1,100,10000", "--scaling-sizes", "none", "--no-strace"],
        "echo": ["--size", "1024,102400", "--connections", "2", "--repeat", "1",
                 "--duration", "0.15", "--warmup", "0.05", "--wait-idle", "0",
                 "--idle-sample", "0.02", "--retry-busy", "0"],
        "loop": ["--quick", "--rounds", "1", "--chain", "500", "--timers", "100",
                 "--wakeups", "20"],
    },
}
SECTIONS = ("selectors", "echo", "loop")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true",
                   help="every benchmark at small counts, under a minute")
    p.add_argument("--smoke", action="store_true", help="tinier still: the test suite's run")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"), metavar="DIR",
                   help="where results.json, summary.md and the PNGs go (%(default)s)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help="comma list among selectors,echo,loop (default all)")
    args = p.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.section_list = [s for s in args.sections.split(",") if s]
    if set(args.section_list) - set(SECTIONS):
        p.error(f"--sections among {','.join(SECTIONS)}")
    return args


def _command(module: str, argv: list[str]) -> str:
    return " ".join(["python -m", module, *map(shlex.quote, argv)])


def run_selectors(argv: list[str]) -> dict:
    a = selectors_bench.parse_args(argv)
    doc = selectors_bench.measure(processes=a.processes, rounds=a.rounds, batch_ms=a.batch_ms,
                                  warmup=a.warmup, sizes=a.size_list,
                                  scaling_sizes=a.scaling_list, backends=a.backend_list,
                                  pin=not a.no_pin, floor=not a.no_floor)
    doc["strace_check"] = {"status": "skipped", "reason": "--no-strace"}
    if not a.no_strace:
        log("[selectors] strace check: data-only modify() makes no epoll_ctl")
        doc["strace_check"] = selectors_bench.strace_check()
        log(f"[selectors] strace check {doc['strace_check']['status']}")
    return doc


def run_echo(argv: list[str]) -> dict:
    a = echo_bench.parse_args(argv + ["--servers", ",".join(echo_bench.SUITE_SERVERS)])
    return echo_bench.measure(a, log)


def run_loop(argv: list[str]) -> dict:
    a = loop_bench.parse_args(argv)
    return loop_bench.measure(processes=a.processes, rounds=a.rounds, warmup=a.warmup,
                              counts=a.counts, impls=a.impl_list, benches=a.bench_list)


RUNNERS = {"selectors": run_selectors, "echo": run_echo, "loop": run_loop}


def main(argv=None) -> int:
    args = parse_args(argv)
    from benchmarks import plots, report  # matplotlib: imported once the arguments are good
    atexit.register(echo_bench._kill_all_children)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, echo_bench._on_signal)
    os.makedirs(args.out, exist_ok=True)
    mode = MODES[args.mode]
    suite_cmd = "python -m benchmarks" + {"full": "", "quick": " --quick",
                                          "smoke": " --smoke"}[args.mode]
    if args.out != os.path.join("benchmarks", "results"):
        suite_cmd += f" --out {shlex.quote(args.out)}"
    if args.section_list != list(SECTIONS):
        suite_cmd += f" --sections {','.join(args.section_list)}"
    meta = machine_info()
    meta.update(mode=args.mode, uvloop=uvloop_version(), sections=args.section_list)
    doc: dict = {
        "meta": meta,
        "commands": {"suite": suite_cmd,
                     "selectors": _command("benchmarks.selectors_bench", mode["selectors"]),
                     "echo": _command("benchmarks.echo_bench", mode["echo"] + [
                         "--servers", ",".join(echo_bench.SUITE_SERVERS)]),
                     "loop": _command("benchmarks.loop_bench", mode["loop"])},
        "notes": [],
    }
    if meta["uvloop"] is None:
        doc["notes"].append("uvloop is not installed (the optional `bench` extra): its echo "
                            "server and loop are marked 'not installed'")
        log("[suite] uvloop is not installed: its echo server and loop are left out "
            "(pip install -e '.[bench]')")
    log(f"[suite] {args.mode} run: {', '.join(args.section_list)} -> {args.out}")
    t_start = time.monotonic()
    status = 0
    for i, section in enumerate(args.section_list):
        t0 = time.monotonic()
        log(f"[suite] {i + 1}/{len(args.section_list)} {section}: "
            f"{doc['commands'][section]}")
        doc[section] = RUNNERS[section](mode[section])
        meta.setdefault("section_s", {})[section] = round(time.monotonic() - t0, 1)
        log(f"[suite] {section} done in {time.monotonic() - t0:.0f} s "
            f"(total {time.monotonic() - t_start:.0f} s)")
    if doc.get("selectors") and (doc["selectors"]["errors"] or
                                 doc["selectors"]["strace_check"].get("status") == "FAILED"):
        status = 2
    if doc.get("echo") and any(not r["ok"] for r in doc["echo"]["runs"]):
        status = 2
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)

    log("[suite] plotting")
    doc["files"] = {k: os.path.basename(v) for k, v in plots.draw_all(doc, args.out,
                                                                      suite_cmd).items()}
    doc["files"].update(json="results.json", summary="summary.md")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(report.build(doc))
    log(f"[suite] wrote {', '.join(sorted(doc['files'].values()))} to {args.out} "
        f"in {time.monotonic() - t_start:.0f} s")
    return status


if __name__ == "__main__":
    run_cli(main)
