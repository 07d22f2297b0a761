"""File IO under asyncio (issue 11): reactor.open_file (io_uring) beside
the thread pools and plain synchronous reads, all in one process.

    python -m benchmarks.files_bench [--quick | --smoke] [--loop asyncio|asyncio-reactor|uvloop]
                                     [--cpu N|all] [--json FILE]

Workloads, by 64 tasks on a fresh asyncio loop, all in the page cache:
``random``, 20,000 random 4 KiB-aligned 4 KiB reads of a 64 MiB file;
``small``, 10,000 4 KiB files read whole.  Implementations, interleaved
round by round (the order rotates), medians of 5 rounds: ``reactor``
(``open_file()`` + ``f.pread()``; ``read_bytes()``); ``aiofiles`` as its
users call it (a file per task, ``seek()`` then ``read()``: two hops to its
thread pool; ``async with aiofiles.open()``); ``aiofiles-pread``, one hop
(``aiofiles.os.wrap(os.pread)``; a wrapped open-read-close); ``to_thread``
(``asyncio.to_thread(os.pread, ...)``); ``sync``, ``os.pread`` and
``open().read()`` in a loop, the floor.  Figures: reads per second; CPU per
read of the whole process, every thread (``time.process_time``, user and
system from ``os.times``).  Issue 11's targets: reactor >= 4x aiofiles'
reads per second, <= 0.25x its CPU per read.  Pinned to the suite's
measured CPU (``--cpu all``: the thread pools may use the other one too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import types

from benchmarks._harness import cpus, machine, new_loop
from reactor.models.driver import rotated

IMPLS = ("reactor", "aiofiles", "aiofiles-pread", "to_thread", "sync")
WORKLOADS = ("random", "small")
BLOCK, TASKS = 4096, 64
MODES = {
    "full": dict(repeat=5, reads=20_000, files=10_000, file_size=64 << 20),
    "quick": dict(repeat=1, reads=2_000, files=1_000, file_size=64 << 20),
    "smoke": dict(repeat=1, reads=200, files=100, file_size=8 << 20),
}


def make_files(directory: str, cfg: dict) -> types.SimpleNamespace:
    """The big file and the small ones (read once: the page cache holds them), the offsets."""
    big = os.path.join(directory, "big.bin")
    with open(big, "wb") as f:
        for _ in range(cfg["file_size"] >> 20):
            f.write(os.urandom(1 << 20))
    paths = [os.path.join(directory, f"{i:05d}") for i in range(cfg["files"])]
    for path in paths:
        with open(path, "wb") as f:
            f.write(os.urandom(BLOCK))
    for path in [big, *paths]:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    rng = random.Random(11)
    offsets = [rng.randrange(cfg["file_size"] // BLOCK) * BLOCK for _ in range(cfg["reads"])]
    return types.SimpleNamespace(big=big, paths=paths, offsets=offsets)


async def _split(items, work, tasks: int = TASKS) -> None:
    """`tasks` concurrent tasks sharing `items`, each awaiting work(item)."""
    queue = iter(items)  # one shared iterator: the next item goes to whoever is free

    async def worker():
        for item in queue:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(tasks)))


def _read_whole(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def _aiofiles_seek_read(path: str, offsets: list[int]) -> None:
    import aiofiles

    files = [await aiofiles.open(path, "rb") for _ in range(TASKS)]

    async def one(f, mine):
        for off in mine:
            await f.seek(off)
            await f.read(BLOCK)

    try:
        await asyncio.gather(*(one(f, offsets[i::TASKS]) for i, f in enumerate(files)))
    finally:
        for f in files:
            await f.close()


async def random_reads(impl: str, path: str, offsets: list[int]) -> None:
    if impl == "aiofiles":
        return await _aiofiles_seek_read(path, offsets)
    if impl == "reactor":
        import reactor

        async with reactor.open_file(path, "rb") as f:
            return await _split(offsets, lambda off: f.pread(BLOCK, off))
    fd = os.open(path, os.O_RDONLY)
    try:
        if impl == "aiofiles-pread":
            import aiofiles.os

            pread = aiofiles.os.wrap(os.pread)
            await _split(offsets, lambda off: pread(fd, BLOCK, off))
        else:
            await _split(offsets, lambda off: asyncio.to_thread(os.pread, fd, BLOCK, off))
    finally:
        os.close(fd)


async def small_reads(impl: str, paths: list[str]) -> None:
    if impl == "reactor":
        import reactor

        return await _split(paths, reactor.read_bytes)
    if impl == "aiofiles":
        import aiofiles

        async def one(path):
            async with aiofiles.open(path, "rb") as f:
                await f.read()

        return await _split(paths, one)
    if impl == "aiofiles-pread":
        import aiofiles.os

        return await _split(paths, aiofiles.os.wrap(_read_whole))
    await _split(paths, lambda path: asyncio.to_thread(_read_whole, path))


def measure(impl: str, workload: str, data, loop_kind: str) -> dict:
    """One implementation on one workload, once: its figures."""

    def work(offsets, paths):
        if workload == "random":
            return random_reads(impl, data.big, offsets)
        return small_reads(impl, paths)

    n = len(data.offsets if workload == "random" else data.paths)
    loop = None if impl == "sync" else new_loop(loop_kind)
    try:
        if loop is not None:  # the ring, the thread pool: made before the clock starts
            loop.run_until_complete(work([0, BLOCK] * TASKS, data.paths[: 2 * TASKS]))
        t0, c0, times0 = time.perf_counter(), time.process_time(), os.times()
        if impl == "sync" and workload == "small":
            for path in data.paths:
                _read_whole(path)
        elif impl == "sync":
            with open(data.big, "rb", buffering=0) as f:
                for off in data.offsets:
                    os.pread(f.fileno(), BLOCK, off)
        else:
            loop.run_until_complete(work(data.offsets, data.paths))
        t1, c1, times1 = time.perf_counter(), time.process_time(), os.times()
    finally:
        if loop is not None:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    return {
        "reads": n,
        "wall_s": t1 - t0,
        "reads_per_s": n / (t1 - t0),
        "cpu_us_per_read": (c1 - c0) / n * 1e6,
        "user_us_per_read": (times1.user - times0.user) / n * 1e6,
        "sys_us_per_read": (times1.system - times0.system) / n * 1e6,
    }


def _available(impl: str) -> str | None:
    if impl.startswith("aiofiles"):
        try:
            import aiofiles.os  # noqa: F401
        except ImportError:
            return "aiofiles is not installed (pip install aiofiles)"
    if impl == "reactor":
        import reactor

        if not reactor.uring_available():
            return (
                f"io_uring is not available ({reactor.uring_available().reason}); "
                "reactor.open_file would use its thread pool"
            )
    return None


def run(mode: str = "full", loop_kind: str = "asyncio", progress=print) -> dict:
    """Every round x workload x implementation: {"config", "skipped",
    "results": {workload: {impl: {"runs", "median", "min_max"}}}, "ratios"}."""
    cfg = {**MODES[mode], "tasks": TASKS, "block": BLOCK, "loop": loop_kind}
    skipped = {impl: why for impl in IMPLS if (why := _available(impl))}
    impls = [impl for impl in IMPLS if impl not in skipped]
    runs: dict = {w: {impl: [] for impl in impls} for w in WORKLOADS}
    with tempfile.TemporaryDirectory(prefix="files_bench-") as directory:
        data = make_files(directory, cfg)
        for rnd in range(cfg["repeat"]):
            for k, workload in enumerate(WORKLOADS):
                for impl in rotated(impls, rnd + k):
                    got = measure(impl, workload, data, loop_kind)
                    runs[workload][impl].append(got)
                    progress(
                        f"round {rnd + 1}/{cfg['repeat']} {workload:6} {impl:15} "
                        f"{got['reads_per_s']:9.0f} reads/s "
                        f"{got['cpu_us_per_read']:7.2f} us CPU/read"
                    )
    results = {
        w: {
            impl: {
                "runs": rs,
                "median": {k: statistics.median(r[k] for r in rs) for k in rs[0]},
                "min_max": [min(r["reads_per_s"] for r in rs), max(r["reads_per_s"] for r in rs)],
            }
            for impl, rs in by_impl.items()
        }
        for w, by_impl in runs.items()
    }
    return {"config": cfg, "skipped": skipped, "results": results, "ratios": ratios(results)}


def ratios(results: dict) -> dict:
    """reactor beside each baseline, per workload: its reads per second and
    CPU per read as multiples of the baseline's."""
    out: dict = {}
    for workload, by_impl in results.items():
        ours = by_impl.get("reactor", {}).get("median")
        for impl, theirs in ((i, d["median"]) for i, d in by_impl.items() if i != "reactor"):
            if ours:
                out.setdefault(workload, {})[impl] = {
                    "reads_per_s_x": ours["reads_per_s"] / theirs["reads_per_s"],
                    "cpu_per_read_x": ours["cpu_us_per_read"] / theirs["cpu_us_per_read"],
                }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.files_bench", description=__doc__.split("\n\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="2,000 reads, 1,000 files, 1 round")
    mode.add_argument("--smoke", action="store_true", help="smaller still: the tests' pass")
    parser.add_argument(
        "--loop", choices=("asyncio", "asyncio-reactor", "uvloop"), default="asyncio"
    )
    parser.add_argument(
        "--cpu",
        default=str(cpus()[1]),
        help="the CPU to run on, or 'all' (default %(default)s: the suite's measured CPU)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    args = parser.parse_args(argv)
    if args.cpu != "all":
        os.sched_setaffinity(0, {int(args.cpu)})
    doc = run(
        "smoke" if args.smoke else "quick" if args.quick else "full",
        args.loop,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    doc["command"] = " ".join(["python -m benchmarks.files_bench", *(argv or sys.argv[1:])])
    doc["machine"] = machine()
    from benchmarks.report import files_lines

    print("\n".join(files_lines(doc)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
