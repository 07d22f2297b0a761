"""Selector micro-benchmarks on pyperf: reactor's selectors, the stdlib's, and
the same syscalls timed from C (the kernel floor).

    python -m benchmarks.selectors_bench --impl stdlib -o stdlib.json
    python -m benchmarks.selectors_bench --impl reactor -o reactor.json
    python -m benchmarks.selectors_bench --impl kernel -o kernel.json
    python -m pyperf compare_to stdlib.json reactor.json kernel.json --table

pyperf's options all apply (``--fast``, ``--processes``, ``--affinity``...).
For each backend (epoll, poll, select):

* ``select(0) N=n ready=k``: one ``select(0)``, n fds registered, k readable;
* ``register+unregister N=1000``: register and unregister one more fd;
* ``modify(mask) N=1000``: one ``modify()``, READ <-> READ|WRITE;
* ``modify(data) N=1000``: one ``modify()`` changing only ``data``.

The fds are socketpair ends opened first (the lowest fds, contiguous, so
N=1000 stays below select's 1024), both ends used; fd i is made readable by
one byte from its peer i^1, and nothing reads it, so it stays ready.  Before
timing, each case checks that ``select(0)`` reports exactly the ready fds
with their ``data``.  The stdlib's ``SelectSelector`` refuses fds >= 1024
(ValueError), so it has no N >= 3000 cases.

``--impl kernel`` runs ``benchmarks/floor.c`` (compiled at run time) in
``--processes`` processes, each case ``--values`` batches of ~``--min-time``,
and writes them as pyperf runs under the same names, for the cases that make
a syscall: poll and select keep their interest sets in user space, so
register, unregister and modify make none, nor does a data-only modify.
"""

import atexit
import importlib
import itertools
import json
import os
import selectors
import socket
import subprocess
import time

from benchmarks._harness import compile_c, runner

# N with 1 and with N ready; "Nx": 1 ready only (more points on the scaling curve)
SIZES = "1,3x,10,30x,100,300x,1000,3000x,10000"
BIG_N = 1000
FD_SETSIZE = 1024
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
# the floor.c mode timing the syscall one operation makes
FLOOR = {
    ("select(0)", "epoll"): "epoll_wait",
    ("select(0)", "poll"): "poll",
    ("select(0)", "select"): "select",
    ("register+unregister", "epoll"): "epoll_add_del",
    ("modify(mask)", "epoll"): "epoll_mod",
}
_SOCKS: list[socket.socket] = []
_FDS: list[int] = []
_READY: set[int] = set()
_SELECTORS: dict[tuple, selectors.BaseSelector] = {}


def cases(sizes: str = SIZES) -> list[tuple]:
    """(name, op, backend, n, ready) of every benchmark."""
    out = []
    for backend in ("epoll", "poll", "select"):
        for item in sizes.split(","):
            n = int(item.rstrip("x"))
            for ready in [1] if item.endswith("x") or n == 1 else [1, n]:
                out.append(
                    (f"{backend} select(0) N={n} ready={ready}", "select(0)", backend, n, ready)
                )
        for op in ("register+unregister", "modify(mask)", "modify(data)"):
            out.append((f"{backend} {op} N={BIG_N}", op, backend, BIG_N, None))
    return out


def stdlib_refuses(backend: str, n: int) -> bool:
    return backend == "select" and n >= FD_SETSIZE


def _fds(count: int) -> list[int]:
    while len(_SOCKS) < count:
        _SOCKS.extend(socket.socketpair())
        _FDS.extend(s.fileno() for s in _SOCKS[-2:])
    return _FDS[:count]


def _set_ready(want: set[int]) -> None:
    """Make exactly the fds at these indices readable (pyperf --in-process
    runs every case in one process)."""
    for i in _READY - want:
        _SOCKS[i].recv(1)  # the one byte that made it ready
    for i in want - _READY:
        _SOCKS[i ^ 1].send(b"x")
    _READY.clear()
    _READY.update(want)


def _select(loops, select):
    t0 = time.perf_counter()
    for _ in itertools.repeat(None, loops):
        select(0)
    return time.perf_counter() - t0


def _register_unregister(loops, register, unregister, fd):
    t0 = time.perf_counter()
    for _ in itertools.repeat(None, loops):
        register(fd, READ)
        unregister(fd)
    return time.perf_counter() - t0


def _modify(loops, modify, fd, events, data, events2, data2):
    """Two modify() calls per loop (inner_loops=2), back and forth."""
    t0 = time.perf_counter()
    for _ in itertools.repeat(None, loops):
        modify(fd, events, data)
        modify(fd, events2, data2)
    return time.perf_counter() - t0


def _selector(impl, op, backend, n):
    """A selector with n fds registered (data: their index), made once per
    process and case: pyperf calls time_case for every value and calibration."""
    key = (impl, op, backend, n)
    if key not in _SELECTORS:
        module = importlib.import_module("reactor" if impl == "reactor" else "selectors")
        sel = _SELECTORS[key] = getattr(module, backend.capitalize() + "Selector")()
        atexit.register(sel.close)
        for i, fd in enumerate(_fds(n)):
            sel.register(fd, READ, i)
    return _SELECTORS[key]


def time_case(loops, impl, op, backend, n, ready):
    sel, fds = _selector(impl, op, backend, n), _fds(n + 1)
    if op == "select(0)":
        _set_ready(set(range(n - ready, n)))
        got = sorted((key.fd, key.data, events) for key, events in sel.select(0))
        if got != [(fd, i, READ) for i, fd in enumerate(fds) if n - ready <= i < n]:
            raise RuntimeError(f"{impl} {backend} select(0): {len(got)} events, want {ready}")
        return _select(loops, sel.select)
    if op == "register+unregister":
        return _register_unregister(loops, sel.register, sel.unregister, fds[n])
    target, data, other = fds[n // 2], object(), object()
    sel.modify(target, READ, data)
    first = (READ | WRITE, data) if op == "modify(mask)" else (READ, other)
    dt = _modify(loops, sel.modify, target, *first, READ, data)
    key = sel.get_key(target)
    if key.events != READ or key.data is not data:
        raise RuntimeError(f"{impl} {backend} {op}: wrong key after the loop: {key}")
    return dt


def kernel(args, todo) -> None:
    """The floor: floor.c's batches, written as pyperf runs."""
    import pyperf

    names = {}
    for name, op, backend, n, ready in todo:
        if (op, backend) in FLOOR:
            names[f"{FLOOR[op, backend]}:{n}" + (f":{ready}" if ready else "")] = name
    cpus = {int(c) for c in args.affinity.split(",")} if args.affinity else None
    runs: dict[str, list] = {name: [] for name in names.values()}
    argv = [compile_c("floor.c"), str(args.values), str(int(args.min_time * 1e9)), *names]
    # (pyperf < 2.11 has no in_process)
    for _ in range(1 if getattr(args, "in_process", False) else args.processes):
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=cpus and (lambda: os.sched_setaffinity(0, cpus)),
        ).stdout
        for line in out.splitlines():
            d = json.loads(line)
            name = names[f"{d['case']}:{d['n']}" + (f":{d['ready']}" if d["ready"] >= 0 else "")]
            runs[name].append(
                pyperf.Run(
                    [ns / 1e9 for ns in d["ns_per_op"]],
                    metadata={"name": name, "loops": d["ops"]},
                    collect_metadata=False,
                )
            )
    pyperf.BenchmarkSuite([pyperf.Benchmark(r) for r in runs.values()]).dump(args.output)


def main() -> None:
    run = runner(
        "selectors_bench",
        ("stdlib", "reactor", "kernel"),
        forward=("sizes",),
        processes=5,
        min_time=0.05,
    )
    run.argparser.add_argument(
        "--sizes",
        default=SIZES,
        help="N for select(0); 'Nx': 1 ready only, else also N ready (default %(default)s)",
    )
    args = run.parse_args()
    todo = [c for c in cases(args.sizes) if args.impl != "stdlib" or not stdlib_refuses(*c[2:4])]
    if args.impl == "kernel":
        if not args.output:
            run.argparser.error("--impl kernel writes its runs to -o FILE")
        return kernel(args, todo)
    for name, op, backend, n, ready in todo:
        run.bench_time_func(
            name,
            time_case,
            args.impl,
            op,
            backend,
            n,
            ready,
            inner_loops=2 if op.startswith("modify") else None,
        )


if __name__ == "__main__":
    main()
