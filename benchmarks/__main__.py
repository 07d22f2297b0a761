"""The whole benchmark suite in one command, from the repository root.

    python -m benchmarks [--quick] [--out DIR] [--sections a,b,...]

Micro-benchmarks on pyperf, one JSON file per implementation, so
``python -m pyperf compare_to`` works on them (DIR/pyperf/):
  selectors  reactor's selectors vs the stdlib's vs the syscalls from C
  loop       loop dispatch: Reactor, asyncio, asyncio on reactor, uvloop
  import     `import reactor` vs `import selectors`, fresh processes
End to end, on the echo driver (benchmarks/driver.py):
  echo       one asyncio.Protocol on four loops, 1 KiB x 100 connections
  echo-sizes 1, 10, 100 KiB x 1, 10, 100 connections
  tls        the same Protocol over TLS
  models     the IO models' servers, 1 to 1,000 connections
  soak       60 s at 1,000 connections: nothing lost, memory flat

Writes DIR/results.json (every figure, the machine, the commands),
DIR/summary.md (the tables, each with its command) and the PNG plots.
Exit status: 0; 2 when a run failed or an implementation that must work did
not (a missing optional module, such as uvloop, only makes a row "not
available").
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pyperf
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import driver, selectors_bench
from benchmarks._harness import PY, ROOT, cpus, machine

# section -> (module, implementations, the baseline first)
MICRO = {
    "selectors": ("selectors_bench", ("stdlib", "reactor", "kernel")),
    "loop": ("loop_bench", ("asyncio", "asyncio-reactor", "uvloop", "reactor")),
    "import": ("import_bench", ("stdlib", "reactor")),
}
# benchmarks/files_bench.py (file IO, from the io_uring issue) joins when it lands:
# its run(mode) -> dict goes into results.json and summary.md as it is
FILES = importlib.util.find_spec("benchmarks.files_bench") is not None
SECTIONS = (*MICRO, *driver.CASES, *["files"] * FILES)
# pyperf options per mode; the full run stays under ~10 minutes on 2 cores
PYPERF = {
    "full": {"selectors": "--processes 2 --values 5 --min-time 0.02",
             "loop": "--processes 2 --values 4 --min-time 0.05", "import": ""},
    # --in-process: no worker processes, so it takes seconds (import keeps its workers)
    "quick": {"selectors": "--sizes 1,100,1000,10000 --in-process --values 2 --loops 4 "
                           "--min-time 0.005",  # the kernel floor's batches
              "loop": "--in-process --values 3 --loops 2000",
              "import": "--processes 1 --values 4"},
    "smoke": {"selectors": "--sizes 1,10000 --in-process --values 1 --warmups 0 --loops 4 "
                           "--min-time 0.001",
              "loop": "--in-process --values 1 --warmups 0 --loops 50",
              "import": "--processes 1 --values 1 --warmups 0 --loops 1"},
}
# pyperf runs a benchmark in the calling process from 2.11, which needs Python
# 3.11; on 3.10 the quick modes take one worker process instead.
_PYPERF_IN_PROCESS = tuple(
    int(part) for part in importlib.metadata.version("pyperf").split(".")[:2]) >= (2, 11)
ECHO = {  # how --quick and --smoke shrink the echo driver's cases
    "quick": dict(repeat=1, duration=0.15, warmup=0.05),
    "smoke": dict(repeat=1, duration=0.1, warmup=0.05, connections=(2,)),
}
SOAK = {"quick": dict(duration=3.0, connections=(50,)), "smoke": dict(duration=1.0,
                                                                        connections=(20,))}


def micro(section: str, mode: str, out: str, advance) -> dict:
    """Every implementation of one pyperf script: medians (robust on a shared
    machine), pyperf's own comparison, and why an implementation is missing."""
    module, impls = MICRO[section]
    opts = shlex.split(PYPERF[mode][section])
    if "--in-process" in opts and not _PYPERF_IN_PROCESS:  # pyperf < 2.11 (Python 3.10)
        opts[opts.index("--in-process")] = "--processes=1"
    doc = {"command": " ".join([f"python -m benchmarks.{module} --impl {{{','.join(impls)}}}",
                                "-o IMPL.json", f"--affinity={cpus()[1]}", *opts]),
           "files": {}, "unavailable": {}, "errors": [], "benchmarks": {}}
    os.makedirs(os.path.join(out, "pyperf"), exist_ok=True)
    order: list[str] = []
    for impl in impls:
        path = os.path.join("pyperf", f"{section}-{impl}.json")
        if os.path.exists(os.path.join(out, path)):
            os.remove(os.path.join(out, path))
        # --copy-env: the environment as the suite got it (CI's sanitizer run preloads ASan)
        argv = [PY, "-m", f"benchmarks.{module}", "--impl", impl, "-o", os.path.join(out, path),
                "--quiet", f"--affinity={cpus()[1]}", "--copy-env", *opts]
        lines, names = [], []
        with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            for line in proc.stdout:
                lines.append(line.rstrip())
                advance("Mean +- std dev" in line)
        if proc.returncode:
            # the worker's exception comes first, pyperf's "worker failed" after it
            why = next((ln for ln in lines if re.match(r"[\w.]+(Error|Exception): ", ln)),
                       lines[-1] if lines else f"exit {proc.returncode}")
            doc["unavailable"][impl] = why
            if "ImportError" not in why and "ModuleNotFoundError" not in why:
                doc["errors"].append(f"{impl}: {why}")
            continue
        doc["files"][impl] = path
        for bench in pyperf.BenchmarkSuite.load(os.path.join(out, path)).get_benchmarks():
            doc["benchmarks"].setdefault(bench.get_name(), {})[impl] = {
                "median": bench.median(),
                "mad": bench.median_abs_dev() if bench.get_nvalue() > 1 else 0.0}
            names.append(bench.get_name())
        order = max(order, names, key=len)  # the implementation with every case
    doc["benchmarks"] = dict(sorted(doc["benchmarks"].items(), key=lambda kv: order.index(kv[0])
                                    if kv[0] in order else len(order)))
    files = [os.path.join(out, p) for p in doc["files"].values()]
    if len(files) > 1:
        doc["compare_to"] = subprocess.run([PY, "-m", "pyperf", "compare_to", *files, "--table"],
                                           capture_output=True, text=True).stdout
    return doc


def echo_case(section: str, mode: str) -> driver.Case:
    case = driver.CASES[section]
    if mode == "full":
        return case
    changes = dict((SOAK if case.memory_check else ECHO)[mode])
    if section == "echo-sizes" and mode == "quick":  # the smallest and the largest
        changes.update(sizes=(1024, 102400), connections=(1, 100))
    elif section == "echo-sizes":
        changes.update(sizes=(102400,))
    return dataclasses.replace(case, **changes)


def steps(section: str, mode: str) -> int:
    """How far the progress bar moves for a section (about: a micro-benchmark
    implementation may have fewer cases)."""
    if section == "selectors":
        opts = shlex.split(PYPERF[mode]["selectors"])
        sizes = opts[opts.index("--sizes") + 1] if "--sizes" in opts else selectors_bench.SIZES
        return len(selectors_bench.cases(sizes)) * len(MICRO[section][1])
    if section in MICRO:
        return {"loop": 3, "import": 1}[section] * len(MICRO[section][1])
    if section == "files":
        return 1
    case = echo_case(section, mode)
    return case.repeat * len(case.sizes) * len(case.connections) * len(case.servers)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--quick", action="store_true", help="everything at small counts, < 1 min; "
                   "the figures only show that it runs")
    p.add_argument("--smoke", action="store_true", help="smaller still: the test suite's pass")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"), metavar="DIR",
                   help="where the results go (default %(default)s)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list among "
                   f"{','.join(SECTIONS)} (default: all)")
    args = p.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.section_list = [s for s in args.sections.split(",") if s]
    if not args.section_list or set(args.section_list) - set(SECTIONS):
        p.error(f"--sections among {','.join(SECTIONS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from benchmarks import plots, report  # matplotlib, once the arguments are good
    os.makedirs(args.out, exist_ok=True)
    flag = {"full": "", "quick": " --quick", "smoke": " --smoke"}[args.mode]
    command = " ".join(["python -m benchmarks", *map(shlex.quote, sys.argv[1:] if argv is None
                                                      else argv)])
    doc = {"meta": {**machine(), "mode": args.mode, "command": command}}
    console = Console(stderr=True)
    t_start = time.monotonic()
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.completed}"
                  "/{task.total}"), TimeElapsedColumn(), console=console) as progress:
        tasks = {s: progress.add_task(s, total=steps(s, args.mode), start=False)
                 for s in args.section_list}
        for section in args.section_list:
            t0 = time.monotonic()
            progress.start_task(tasks[section])

            def advance(step=True, task=tasks[section]):
                progress.advance(task, int(step))
            if section in MICRO:
                doc[section] = micro(section, args.mode, args.out, advance)
            elif section == "files":
                from benchmarks import files_bench
                doc[section] = {"command": f"python -m benchmarks{flag} --sections files",
                                **files_bench.run(args.mode)}
            else:
                doc[section] = driver.run_case(echo_case(section, args.mode), advance)
                doc[section]["command"] = f"python -m benchmarks{flag} --sections {section}"
            progress.update(tasks[section], completed=progress.tasks[tasks[section]].total)
            progress.console.print(f"[suite] {section} done in {time.monotonic() - t0:.0f} s",
                                   markup=False)
    doc["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
    doc["plots"] = plots.draw_all(doc, args.out)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(report.summary(doc))
    failed = report.failures(doc)
    for line in failed:
        console.print(f"FAILED: {line}", style="red", markup=False)
    console.print(f"[suite] {args.mode} run in {doc['meta']['elapsed_s']:.0f} s: results.json, "
                  f"summary.md and {len(doc['plots'])} plots in {args.out}", markup=False)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
