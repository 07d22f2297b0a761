"""The suite's end-to-end cases on the echo driver that ``python -m reactor
models`` uses too (reactor/models/driver.py, whose docstring says how a
case runs): the servers, the cases and the ratios.

A server is an entry in ``SERVERS``: a command line that listens on
127.0.0.1 on the port the system picks (``--port 0``), logs ``listening on
HOST:PORT`` to stderr and exits 0 on SIGTERM.  A case is an entry in
``CASES``: its servers run at once, taking turns, except the IO models'
(model 2 spins), which start one by one.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from typing import NamedTuple

from benchmarks._harness import PY, ROOT, cache_dir, compile_c, tls_loadclient
from reactor.models import cases, driver as _driver
from reactor.models.driver import Case, Server, find

IMPLS = ("reactor", "uvloop", "asyncio", "asyncio-reactor")  # issue 9's four loops
ASYNCIO_IMPLS = IMPLS[1:]  # the asyncio loops: uvloop's, asyncio's, reactor's EventLoop


def _echo(impl: str, *extra: str) -> Server:
    return Server(
        (PY, "-m", "benchmarks.echo.servers", "--impl", impl, *extra), tls="--tls" in extra
    )


def _cli(*extra: str) -> Server:
    return Server((PY, "-m", "reactor", "echo", "--raw", "--port", "0", *extra))


MODELS = {f"m{cases.MODEL[name]}-{name}": server for name, server in cases.SERVERS.items()}
SERVERS = {
    # ONE asyncio.Protocol echo class on four loops; its BufferedProtocol twin; over TLS
    **{impl: _echo(impl) for impl in IMPLS},
    **{f"{impl}-buffered": _echo(impl, "--buffered") for impl in IMPLS},
    **{f"{impl}-tls": _echo(impl, "--tls", "{cert}", "{key}") for impl in IMPLS},
    # asyncio's other APIs
    **{f"streams-{impl}": _echo(impl, "--api", "streams") for impl in ASYNCIO_IMPLS},
    **{f"sock-{impl}": _echo(impl, "--api", "sock") for impl in ASYNCIO_IMPLS},
    # aiohttp's hello world, under the C client's HTTP/1.1 keep-alive requests
    **{
        f"aiohttp-{impl}": Server(
            (PY, "-m", "benchmarks.aiohttp_server", "--impl", impl), http=True
        )
        for impl in ASYNCIO_IMPLS
    },
    # the chapter's layer: reactor.TCPServer behind `python -m reactor echo`, per selector
    "tcpserver": _cli(),
    "tcpserver-poll": _cli("--backend", "poll"),
    "tcpserver-select": _cli("--backend", "select"),
    # the echo on io_uring completions (`python -m reactor echo --backend uring`'s):
    # recv buffers from a pool the connections share; a buffer per recv
    "tcpserver-uring": Server((PY, "-m", "reactor.chapter._ring_echo", "--raw", "--port", "0")),
    "tcpserver-uring-per-recv": Server(
        (PY, "-m", "reactor.chapter._ring_echo", "--raw", "--port", "0", "--no-provided-buffers")
    ),
    # the chapter's bare loop on the stdlib's selectors (on reactor's: m3-epoll below)
    "chapter": Server((PY, "-m", "benchmarks.echo.chapter_server")),
    # the floor: a minimal epoll echo server in C
    "c-epoll": Server(("{echo/server.c}", _driver.HOST, "0")),
    # the five IO models' servers (reactor/models), m<model>-<name>
    **MODELS,
}

TODAY = ("tcpserver", "chapter", *(f"streams-{impl}" for impl in ASYNCIO_IMPLS), "c-epoll")
CASES = {
    "echo": Case((*IMPLS, *(f"{i}-buffered" for i in IMPLS), *TODAY), repeat=5),
    "aiohttp": Case(
        tuple(f"aiohttp-{impl}" for impl in ASYNCIO_IMPLS), connections=(64,), repeat=5
    ),
    "echo-sizes": Case(
        (*IMPLS, "tcpserver", "chapter", "streams-asyncio", "c-epoll"),
        sizes=(1024, 10240, 102400),
        connections=(1, 10, 100),
        duration=1.0,
    ),
    "tls": Case(tuple(f"{impl}-tls" for impl in IMPLS), repeat=3),
    "uring": Case(
        ("tcpserver", "tcpserver-uring", "tcpserver-uring-per-recv", "c-epoll"),
        connections=(1, 10, 100, 1000),
        repeat=3,
        duration=1.0,
    ),
    "models": Case(
        tuple(MODELS), connections=(1, 10, 100, 1000), idle_cpu_at=1000, duration=1.0, alone=True
    ),
    "soak": Case(("tcpserver",), connections=(1000,), duration=60, warmup=0, memory_check=True),
}


class Ratio(NamedTuple):
    """numerator / denominator in `metric`, per cell where both ran; judged
    against `target` (from issue `issue`) in the cell (size, connections)
    the target is for."""

    numerator: str
    denominator: str
    metric: str
    target: float | None = None
    issue: int | None = None
    cell: tuple[int, int] = (1024, 100)


_USER, _CPU = "user_us_per_msg", "cpu_us_per_msg"
RATIOS = [
    # the callback Reactor: issue 9's targets, and issue 16's on user CPU
    Ratio("reactor", "uvloop", _USER, 1.2, 16),
    Ratio("reactor", "asyncio", _USER, 0.7, 9),
    Ratio("reactor", "uvloop", _CPU, 1.05, 9),
    # reactor's asyncio EventLoop (issue 16): Protocol echo, streams echo, aiohttp
    Ratio("asyncio-reactor", "uvloop", _USER, 1.3, 16),
    Ratio("asyncio-reactor", "asyncio", _USER, 0.6, 16),
    Ratio("asyncio-reactor", "uvloop", _CPU, 1.05, 16),
    Ratio("streams-asyncio-reactor", "streams-uvloop", _USER, 1.25, 16),
    Ratio("streams-asyncio-reactor", "streams-asyncio", _USER, 0.8, 16),
    Ratio("streams-asyncio-reactor", "streams-uvloop", _CPU, 1.1, 16),
    Ratio("aiohttp-asyncio-reactor", "aiohttp-uvloop", _USER, 1.1, 16, (1024, 64)),
    Ratio("aiohttp-asyncio-reactor", "aiohttp-asyncio", _USER, 0.9, 16, (1024, 64)),
    Ratio("aiohttp-asyncio-reactor", "aiohttp-uvloop", _CPU, 1.1, 16, (1024, 64)),
    Ratio("reactor-buffered", "uvloop-buffered", _USER),
    Ratio("reactor-buffered", "uvloop-buffered", _CPU),
    Ratio("reactor-tls", "uvloop-tls", _CPU),
    Ratio("asyncio-reactor-tls", "asyncio-tls", _CPU),
    Ratio("tcpserver", "chapter", _USER),
    Ratio("tcpserver", "c-epoll", "msgs_per_s"),
    # issue 11: echo on io_uring vs epoll, user and total CPU per message
    *(
        Ratio(uring, "tcpserver", metric)
        for uring in ("tcpserver-uring", "tcpserver-uring-per-recv")
        for metric in (_USER, _CPU)
    ),
    Ratio("m3-reactor", "m3-epoll", _USER),
]


def _tools(tmp: str, case: Case) -> tuple[dict, list[str], dict]:
    """The words substituted in the servers' command lines (the C server,
    the TLS certificate), the load client, and the TLS servers that cannot
    run here, with why."""
    words = {
        "{echo/server.c}": compile_c("echo/server.c"),
        "{cert}": f"{tmp}/cert.pem",
        "{key}": f"{tmp}/key.pem",
    }
    tls = [name for name in case.servers if SERVERS[name].tls]
    if not tls:
        return words, _driver.load_client_command(), {}
    try:
        client = tls_loadclient()
    except (OSError, subprocess.CalledProcessError) as exc:
        why = f"no load client with OpenSSL: {str(getattr(exc, 'stderr', None) or exc)[-200:]}"
        return words, _driver.load_client_command(), dict.fromkeys(tls, why)
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
                words["{key}"],
                "-out",
                words["{cert}"],
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        why = f"no certificate: openssl req: {getattr(exc, 'stderr', None) or exc}"
        return words, client, dict.fromkeys(tls, why)
    return words, client, {}


def run_case(case: Case, progress=lambda run: None) -> dict:
    """Run one case on the driver; its result with the ratios."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, (ROOT, os.environ.get("PYTHONPATH"))))
    )  # reactor from this checkout
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # 13 servers compiling asyncio on one core is slow
    env["PYTHONPYCACHEPREFIX"] = cache_dir("pycache")
    with tempfile.TemporaryDirectory(prefix="reactor-bench-") as tmp:
        substitute, client, unavailable = _tools(tmp, case)
        result = _driver.run(
            case,
            SERVERS,
            progress,
            client=client,
            unavailable=unavailable,
            substitute=substitute,
            env=env,
            cwd=ROOT,
        )
    result["ratios"] = ratios(case, result)
    return result


def ratios(case: Case, result: dict) -> list[dict]:
    """RATIOS whose servers are both in the case, per cell: the ratio of
    their medians and of each repetition's pair, or why not."""
    good = {
        (r["server"], r["size"], r["connections"], r["rep"]): r
        for r in result["runs"]
        if "messages" in r and not r["errors"]
    }
    out = []
    for (num, den, metric, target, issue, cell), (size, conns, idle) in itertools.product(
        RATIOS, _driver.cells(case)
    ):
        if idle or num not in case.servers or den not in case.servers:
            continue
        a, b = (find(result["summary"], s, size, conns) or {"runs": 0} for s in (num, den))
        row = {
            "numerator": num,
            "denominator": den,
            "metric": metric,
            "target": target,
            "issue": issue,
            "cell": list(cell),
            "size": size,
            "connections": conns,
        }
        if a["runs"] and b["runs"] and a[metric] > 0 and b[metric] > 0:
            pairs = [
                (good.get((num, size, conns, k)), good.get((den, size, conns, k)))
                for k in range(case.repeat)
            ]
            row.update(
                ratio=a[metric] / b[metric],
                paired=[x[metric] / y[metric] for x, y in pairs if x and y and y[metric] > 0],
            )
        elif a["runs"] and b["runs"]:  # CPU times come in 10 ms ticks: a short run may see none
            zero = den if b[metric] <= 0 else num
            row["why"] = f"{zero}'s {metric} is 0: too short a run"
        else:
            row["why"] = "; ".join(
                f"{s} not available: {result['unavailable'][s]}"
                if s in result["unavailable"]
                else f"{s}: no successful run"
                for s, r in ((num, a), (den, b))
                if not r["runs"]
            )
        out.append(row)
    return out
