"""What the benchmark modules share: paths, the two CPUs, the machine's
description, the C helpers compiled at run time, a new loop of each
implementation, and the pyperf runner with an ``--impl`` flag that every
micro-benchmark script takes (as uvloop's do)."""

from __future__ import annotations

import asyncio
import os
import sys

from reactor.models import _loadclient
from reactor.models._driver import cpus  # noqa: F401  (client CPU, measured CPU)
from reactor.models._report import machine  # noqa: F401  (with the git revision, +dirty)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def cache_dir(*parts: str) -> str:
    path = os.path.join(_loadclient.cache_dir(), "bench", *parts)
    os.makedirs(path, exist_ok=True)
    return path


def compile_c(source: str) -> str:
    """benchmarks/<source> compiled and cached as the load client is; the
    binary's path."""
    with open(os.path.join(ROOT, "benchmarks", source), "rb") as f:
        return _loadclient.build(os.path.basename(source)[:-2], f.read())


def new_loop(impl: str):
    """A fresh event loop: ``reactor.Reactor()`` (``reactor``), asyncio's on
    reactor's selector (``asyncio-reactor``), uvloop's, or asyncio's."""
    if impl == "reactor":
        import reactor
        return reactor.Reactor()
    if impl == "asyncio-reactor":
        import reactor
        return reactor.new_event_loop()
    if impl == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def runner(module: str, impls: tuple[str, ...], forward: tuple[str, ...] = (), **defaults):
    """A ``pyperf.Runner`` for ``python -m benchmarks.<module> --impl IMPL``:
    the worker processes it spawns get the same ``--impl`` and the options
    named in ``forward`` (which the module adds to ``runner.argparser``)."""
    import pyperf

    def pass_on(cmd, args):
        cmd += ["--impl", args.impl]
        for name in forward:
            if getattr(args, name) is not None:
                cmd += [f"--{name}", str(getattr(args, name))]

    run = pyperf.Runner(program_args=("-m", f"benchmarks.{module}"), add_cmdline_args=pass_on,
                        **defaults)
    run.argparser.add_argument("--impl", choices=impls, required=True)
    return run
