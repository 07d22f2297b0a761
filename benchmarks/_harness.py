"""What the benchmark modules share: paths, the two CPUs, the machine's
description, the C helpers compiled at run time, a new loop of each
implementation, and the pyperf runner with an ``--impl`` flag that every
micro-benchmark script takes (as uvloop's do)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import subprocess
import sys

from reactor.models.driver import cpus  # noqa: F401  (client CPU, measured CPU)
from reactor.models.driver import machine  # noqa: F401  (with the git revision, +dirty)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
CFLAGS = ("-O2", "-Wall")
LOADCLIENT = os.path.join(ROOT, "reactor", "models", "loadclient.c")


def cache_dir(*parts: str) -> str:
    """benchmarks/results/cache/...: the C helpers and the bytecode the
    benchmarks build, inside this checkout (git ignores it), never in a
    directory shared with other users."""
    path = os.path.join(ROOT, "benchmarks", "results", "cache", *parts)
    os.makedirs(path, exist_ok=True)
    return path


def compile_c(source: str) -> str:
    """benchmarks/<source> compiled with the system's C compiler, once per
    content, flags and compiler; the binary's path."""
    return _compile(os.path.join(ROOT, "benchmarks", source))


def tls_loadclient() -> list[str]:
    """reactor/models/loadclient.c as a program with OpenSSL (the package's
    own, in reactor._native, has none); CalledProcessError without its
    headers or libraries."""
    return [_compile(LOADCLIENT, ("-lssl", "-lcrypto"))]


def _compile(path: str, libraries: tuple[str, ...] = ()) -> str:
    with open(path, "rb") as f:
        code = f.read()
    compiler = shlex.split(os.environ.get("CC", "cc"))
    version = subprocess.run([*compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(code + repr((compiler, CFLAGS, libraries, version)).encode())
    name = os.path.basename(path)[:-2]
    binary = os.path.join(cache_dir("bin"), f"{name}-{key.hexdigest()[:16]}")
    if not os.path.exists(binary):
        partial = f"{binary}.{os.getpid()}"
        subprocess.run(
            [*compiler, *CFLAGS, "-o", partial, path, *libraries],
            check=True,
            capture_output=True,
            text=True,
        )  # libraries after the source
        os.replace(partial, binary)  # atomic: parallel runs may race
    return binary


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

    run = pyperf.Runner(
        program_args=("-m", f"benchmarks.{module}"), add_cmdline_args=pass_on, **defaults
    )
    run.argparser.add_argument("--impl", choices=impls, required=True)
    return run
