"""The whole benchmark suite in one command, from the repository root.

    python -m benchmarks [--quick] [--out DIR] [--sections a,b,...]

Sections: on pyperf (DIR/pyperf/, one JSON file per implementation, for
``python -m pyperf compare_to``): selectors, loop, import; on the echo
driver (benchmarks/driver.py): echo, echo-sizes, tls, uring, models, soak;
file IO (benchmarks/files_bench.py, DIR/files.json): files.  What each
measures: benchmarks/README.md.  Writes DIR/results.json (every figure, the
machine, the commands), DIR/summary.md (the tables, each with its command)
and the PNG plots.  Exit status 2 when a run failed or an implementation
that must work did not (a missing optional module, such as uvloop, only
makes a row "not available").
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
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
from reactor.models.driver import cells

# section -> (module, implementations, the baseline first)
MICRO = {
    "selectors": ("selectors_bench", ("stdlib", "reactor", "kernel")),
    "loop": ("loop_bench", ("asyncio", "asyncio-reactor", "uvloop", "reactor")),
    "import": ("import_bench", ("stdlib", "reactor")),
}
SECTIONS = (*MICRO, *driver.CASES, "files")
# pyperf options per mode; the full run stays under ~10 minutes on 2 cores
PYPERF = {
    "full": {
        "selectors": "--processes 2 --values 5 --min-time 0.02",
        "loop": "--processes 2 --values 4 --min-time 0.05",
        "import": "",
    },
    # --in-process: no worker processes, so it takes seconds (import keeps its workers)
    "quick": {
        "selectors": "--sizes 1,100,1000,10000 --in-process --values 2 --loops 4 "
        "--min-time 0.005",  # the kernel floor's batches
        "loop": "--in-process --values 3 --loops 2000",
        "import": "--processes 1 --values 4",
    },
    "smoke": {
        "selectors": "--sizes 1,10000 --in-process --values 1 --warmups 0 --loops 4 "
        "--min-time 0.001",
        "loop": "--in-process --values 1 --warmups 0 --loops 50",
        "import": "--processes 1 --values 1 --warmups 0 --loops 1",
    },
}
# pyperf runs a benchmark in the calling process from 2.11, which needs Python
# 3.11; on 3.10 the quick modes take one worker process instead.
_PYPERF_IN_PROCESS = tuple(
    int(part) for part in importlib.metadata.version("pyperf").split(".")[:2]
) >= (2, 11)
# how --quick and --smoke shrink the echo driver's cases: all, then per case
ECHO = {
    "quick": dict(repeat=1, duration=0.15, warmup=0.05),
    "smoke": dict(repeat=1, duration=0.1, warmup=0.05, connections=(2,)),
}
SHRINK = {
    "quick": {
        "echo-sizes": dict(sizes=(1024, 102400), connections=(1, 100)),
        "uring": dict(connections=(1, 100)),
        "models": dict(connections=(1, 100), idle_cpu_at=100, idle_seconds=0.3),
        "soak": dict(duration=3.0, connections=(50,), warmup=0),
    },
    "smoke": {
        "echo-sizes": dict(sizes=(102400,)),
        "models": dict(idle_cpu_at=2, idle_seconds=0.1),
        "soak": dict(duration=1.0, connections=(20,), warmup=0),
    },
}


def micro(section: str, mode: str, out: str, advance) -> dict:
    """Every implementation of one pyperf script: medians (robust on a shared
    machine), pyperf's own comparison, and why an implementation is missing."""
    module, impls = MICRO[section]
    opts = shlex.split(PYPERF[mode][section])
    if "--in-process" in opts and not _PYPERF_IN_PROCESS:  # pyperf < 2.11 (Python 3.10)
        opts[opts.index("--in-process")] = "--processes=1"
    doc = {
        "command": " ".join(
            [
                f"python -m benchmarks.{module} --impl {{{','.join(impls)}}}",
                "-o IMPL.json",
                f"--affinity={cpus()[1]}",
                *opts,
            ]
        ),
        "files": {},
        "unavailable": {},
        "errors": [],
        "benchmarks": {},
    }
    os.makedirs(os.path.join(out, "pyperf"), exist_ok=True)
    order: list[str] = []
    for impl in impls:
        path = os.path.join("pyperf", f"{section}-{impl}.json")
        if os.path.exists(os.path.join(out, path)):
            os.remove(os.path.join(out, path))
        # --copy-env: the environment as the suite got it (CI's sanitizer run preloads ASan)
        argv = [
            PY,
            "-m",
            f"benchmarks.{module}",
            "--impl",
            impl,
            "-o",
            os.path.join(out, path),
            "--quiet",
            f"--affinity={cpus()[1]}",
            "--copy-env",
            *opts,
        ]
        lines, names = [], []
        with subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            for line in proc.stdout:
                lines.append(line.rstrip())
                advance("Mean +- std dev" in line)
        if proc.returncode:
            # the worker's exception comes first, pyperf's "worker failed" after it
            why = next(
                (ln for ln in lines if re.match(r"[\w.]+(Error|Exception): ", ln)),
                lines[-1] if lines else f"exit {proc.returncode}",
            )
            doc["unavailable"][impl] = why
            if "ImportError" not in why and "ModuleNotFoundError" not in why:
                doc["errors"].append(f"{impl}: {why}")
            continue
        doc["files"][impl] = path
        for bench in pyperf.BenchmarkSuite.load(os.path.join(out, path)).get_benchmarks():
            doc["benchmarks"].setdefault(bench.get_name(), {})[impl] = {
                "median": bench.median(),
                "mad": bench.median_abs_dev() if bench.get_nvalue() > 1 else 0.0,
            }
            names.append(bench.get_name())
        order = max(order, names, key=len)  # the implementation with every case
    doc["benchmarks"] = dict(
        sorted(
            doc["benchmarks"].items(),
            key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order),
        )
    )
    files = [os.path.join(out, p) for p in doc["files"].values()]
    if len(files) > 1:
        doc["compare_to"] = subprocess.run(
            [PY, "-m", "pyperf", "compare_to", *files, "--table"], capture_output=True, text=True
        ).stdout
    return doc


def echo_case(section: str, mode: str) -> driver.Case:
    case = driver.CASES[section]
    if mode == "full":
        return case
    return dataclasses.replace(case, **{**ECHO[mode], **SHRINK[mode].get(section, {})})


def files(mode: str, out: str, advance) -> dict:
    """benchmarks/files_bench.py in a process of its own (its CPU figures
    are the whole process's), pinned to the measured CPU; DIR/files.json."""
    argv = ["-m", "benchmarks.files_bench", *[f"--{mode}"] * (mode != "full")]
    doc = {"command": " ".join(["python", *argv]), "errors": []}
    with subprocess.Popen(
        [PY, *argv, "--json", os.path.join(out, "files.json")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        lines = []
        for line in proc.stderr:
            lines.append(line.rstrip())
            advance(line.startswith("round "))
    if proc.returncode:
        return {**doc, "errors": [next((ln for ln in reversed(lines) if ln), "no output")]}
    with open(os.path.join(out, "files.json")) as f:
        return {**json.load(f), **doc}  # the suite's command


def steps(section: str, mode: str) -> int:
    """A section's steps on the progress bar (about: an implementation may lack cases)."""
    if section == "selectors":
        opts = shlex.split(PYPERF[mode]["selectors"])
        sizes = opts[opts.index("--sizes") + 1] if "--sizes" in opts else selectors_bench.SIZES
        return len(selectors_bench.cases(sizes)) * len(MICRO[section][1])
    if section in MICRO:
        return {"loop": 3, "import": 1}[section] * len(MICRO[section][1])
    if section == "files":
        from benchmarks.files_bench import IMPLS, MODES, WORKLOADS

        return MODES[mode]["repeat"] * len(WORKLOADS) * len(IMPLS)
    case = echo_case(section, mode)
    return case.repeat * len(cells(case)) * len(case.servers)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="everything at small counts, < 1 min; the figures only show that it runs",
    )
    p.add_argument("--smoke", action="store_true", help="smaller still: the test suite's pass")
    p.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        metavar="DIR",
        help="where the results go (default %(default)s)",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma list among {','.join(SECTIONS)} (default: all)",
    )
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
    command = " ".join(
        ["python -m benchmarks", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    )
    doc = {"meta": {**machine(), "mode": args.mode, "command": command}}
    console = Console(stderr=True)
    t_start = time.monotonic()
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {
            s: progress.add_task(s, total=steps(s, args.mode), start=False)
            for s in args.section_list
        }
        for section in args.section_list:
            t0 = time.monotonic()
            progress.start_task(tasks[section])

            def advance(step: int = 1, task=tasks[section]):
                progress.advance(task, int(step))

            if section in MICRO:
                doc[section] = micro(section, args.mode, args.out, advance)
            elif section == "files":
                doc[section] = files(args.mode, args.out, advance)
            else:
                doc[section] = driver.run_case(
                    echo_case(section, args.mode), lambda run: advance(run.get("cells", 1))
                )
                doc[section]["command"] = f"python -m benchmarks{flag} --sections {section}"
            progress.update(tasks[section], completed=progress.tasks[tasks[section]].total)
            progress.console.print(
                f"[suite] {section} done in {time.monotonic() - t0:.0f} s", markup=False
            )
    doc["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
    doc["plots"] = plots.draw_all(doc, args.out)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(report.summary(doc))
    failed = report.failures(doc)
    for line in failed:
        console.print(f"FAILED: {line}", style="red", markup=False)
    console.print(
        f"[suite] {args.mode} run in {doc['meta']['elapsed_s']:.0f} s: results.json, "
        f"summary.md and {len(doc['plots'])} plots in {args.out}",
        markup=False,
    )
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
