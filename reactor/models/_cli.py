"""``python -m reactor models [--quick | --smoke] [--out DIR] [--servers A,B]``:
the five IO models' servers, measured side by side on this machine.

Every server (reactor/models/*.py) runs against a C load client (built into
reactor._native with the package): messages per second,
server CPU per message, p50/p99 latency at 1, 10, 100 and 1,000
connections; server CPU while 1,000 connections sit silent; 1 active + N
idle connections for N up to 10,000.  It prints each figure as it comes,
then writes results.json, summary.md, load.png and idle.png to DIR.
About 8 minutes; --quick under a minute (figures from tiny windows);
--smoke a few seconds (checks that everything runs, figures meaningless).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from . import _report, cases, driver as _driver

# `python -m reactor models --help`: for users (the docstring above is for developers).
DESCRIPTION = """\
The chapter's five IO models (blocking, non-blocking, multiplexing,
signal-driven, asynchronous), one echo server each, measured side by side on
this machine by a load client written in C (built with reactor, no compiler
needed): messages per second, server CPU per message and p50/p99 latency at
1 to 1,000 connections, server CPU while 1,000 connections sit silent.

It prints each figure as it comes, then writes results.json, summary.md,
load.png and idle.png to --out.  About 8 minutes; --quick under a minute;
--smoke a few seconds (checks that everything runs)."""


def add_arguments(parser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="one short round (< 1 min)")
    mode.add_argument(
        "--smoke", action="store_true", help="the smallest round, for tests (a few seconds)"
    )
    parser.add_argument(
        "--out",
        default="reactor-models",
        metavar="DIR",
        help="where to write the results (default: ./reactor-models)",
    )
    parser.add_argument(
        "--servers", metavar="A,B", help="only these servers: " + ", ".join(cases.SERVERS)
    )


def select_check() -> str:
    """What the stdlib's SelectSelector and reactor's do with fd 1050."""
    from ..chapter import _demo

    return f"select() on fd 1050 (FD_SETSIZE is 1024): {_demo.high_fd_select()}"


def main(args) -> int:
    plan = cases.PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.servers:
        wanted = args.servers.split(",")
        unknown = set(wanted) - set(cases.SERVERS)
        if unknown:
            print(
                f"reactor models: unknown server {', '.join(sorted(unknown))} (known: "
                f"{', '.join(cases.SERVERS)})",
                file=sys.stderr,
            )
            return 2
        plan = dataclasses.replace(plan, servers=tuple(s for s in plan.servers if s in wanted))
    command = (
        "python -m reactor models"
        + "".join(
            f" {flag}" for flag, on in (("--quick", args.quick), ("--smoke", args.smoke)) if on
        )
        + (f" --servers {args.servers}" if args.servers else "")
        + f" --out {args.out}"
    )
    total = plan.repeat * len(_driver.cells(plan)) * len(plan.servers)
    count, start = [0], time.monotonic()

    def progress(run):
        count[0] += run.get("cells", 1)
        print(_report.progress_line(run, count[0], total, time.monotonic() - start), flush=True)

    print(f"{command}: {len(plan.servers)} servers, {total} measurements\n", flush=True)
    loadavg_at_start = [round(x, 2) for x in os.getloadavg()]
    result = _driver.run(plan, cases.SERVERS, progress)
    result.update(
        command=command,
        machine=_driver.machine(),
        select_check=select_check(),
        models={name: cases.MODEL[name] for name in plan.servers},
    )
    result["machine"]["loadavg_at_start"] = loadavg_at_start
    files = _report.write(result, args.out)
    print("\n" + _report.tables(result))
    for note in _report.notes(result):
        print(f"\nnote: {note}")
    print(f"\nwrote {', '.join(files)} ({time.monotonic() - start:.0f} s)")
    failed = [r for r in result["runs"] if r.get("error") or r.get("errors")]
    return 1 if failed or _driver.bad_exits(result) else 0
