"""The echo driver: every end-to-end case (echo, echo-sizes, tls, models,
soak) starts its servers and loads them the same way.

A server is an entry in ``SERVERS``: a command line that listens on
127.0.0.1, on a port the system picks (``--port 0``), and logs ``listening
on HOST:PORT`` to stderr.  A case is an entry in ``CASES``: its servers,
message sizes, connection counts, repetitions and seconds.  For a case:

1. every server starts at once, pinned to the measured CPU; one that does
   not start (an API not merged yet, a missing module) becomes a row "not
   available: <the last line it printed>", and the rest go on;
2. for each repetition, (size, connections) cell, and server, in an order
   that rotates every time, the compiled client (``echo/client.c``, pinned
   to the other CPU) opens the connections, makes 10 verified round trips on
   one first (``--prime``), loads them for the warm-up, then stops and waits
   (``--sync``) while the driver reads the server's and its own CPU times
   with psutil, and again when the measured window is over; every connection
   ping-pongs one message at a time and every echoed byte is compared;
3. the servers get SIGTERM; a non-zero exit or a traceback is reported;
4. each (server, size, connections) is summarised by medians over the
   repetitions, and the ratios in ``RATIOS`` are computed where both sides ran.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import signal
import statistics
import subprocess
import tempfile
import time

import psutil

from benchmarks._harness import PY, ROOT, cache_dir, compile_c, cpus

HOST = "127.0.0.1"
# CI's sanitizer run preloads ASan into every Python process (.ci/run).
_SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
IMPLS = ("reactor", "uvloop", "asyncio", "asyncio-reactor")  # issue 9's four loops
MIB = 1024 * 1024


def _echo(impl, *extra):
    return [PY, "benchmarks/echo/servers.py", "--impl", impl, *extra]


def _cli(*extra):
    return [PY, "-m", "reactor", "echo", "--raw", "--port", "0", *extra]


SERVERS = {
    # ONE asyncio.Protocol echo class on four loops; its BufferedProtocol twin; over TLS
    **{impl: _echo(impl) for impl in IMPLS},
    **{f"{impl}-buffered": _echo(impl, "--buffered") for impl in IMPLS},
    **{f"{impl}-tls": _echo(impl, "--tls", "{cert}", "{key}") for impl in IMPLS},
    # asyncio's other APIs
    **{f"streams-{impl}": _echo(impl, "--api", "streams") for impl in IMPLS[1:]},
    **{f"sock-{impl}": _echo(impl, "--api", "sock") for impl in IMPLS[1:]},
    # the chapter's layer: reactor.TCPServer behind `python -m reactor echo`, per selector
    "tcpserver": _cli(),
    "tcpserver-poll": _cli("--backend", "poll"),
    "tcpserver-select": _cli("--backend", "select"),
    # the chapter's bare loop, on the stdlib's selectors and on reactor's
    "chapter": [PY, "benchmarks/echo/chapter_server.py"],
    "chapter-reactor": [PY, "benchmarks/echo/chapter_server.py", "--selector", "reactor"],
    # the floor: a minimal epoll echo server in C
    "c-epoll": ["{echo/server.c}", HOST, "0"],
}


@dataclasses.dataclass
class Case:
    servers: list[str]
    sizes: tuple[int, ...] = (1024,)
    connections: tuple[int, ...] = (100,)
    repeat: int = 1
    duration: float = 1.5
    warmup: float = 0.3
    memory_check: bool = False  # the soak: memory must stay flat


TODAY = ["tcpserver", "chapter", "streams-asyncio", "streams-asyncio-reactor", "c-epoll"]
CASES = {
    "echo": Case([*IMPLS, *(f"{i}-buffered" for i in IMPLS), *TODAY], repeat=5),
    "echo-sizes": Case([*IMPLS, "tcpserver", "chapter", "streams-asyncio", "c-epoll"],
                       sizes=(1024, 10240, 102400), connections=(1, 10, 100), duration=1.0),
    "tls": Case([f"{impl}-tls" for impl in IMPLS], repeat=3),
    # issue 12 adds one server per IO model here
    "models": Case(["tcpserver-select", "tcpserver-poll", "tcpserver"],
                   connections=(1, 10, 100, 1000)),
    "soak": Case(["tcpserver"], connections=(1000,), duration=60, warmup=0, memory_check=True),
}

# (numerator, denominator, metric, target from issue 9 or None), per cell where both ran
RATIOS = [
    ("reactor", "uvloop", "user_us_per_msg", 1.2),
    ("reactor", "asyncio", "user_us_per_msg", 0.7),
    ("reactor", "uvloop", "cpu_us_per_msg", 1.05),
    ("reactor-buffered", "uvloop-buffered", "user_us_per_msg", None),
    ("reactor-buffered", "uvloop-buffered", "cpu_us_per_msg", None),
    ("reactor-tls", "uvloop-tls", "cpu_us_per_msg", None),
    ("asyncio-reactor", "asyncio", "user_us_per_msg", None),
    ("tcpserver", "chapter", "user_us_per_msg", None),
    ("tcpserver", "c-epoll", "msgs_per_s", None),
]
METRICS = ("msgs_per_s", "p50_us", "p99_us", "user_us_per_msg", "sys_us_per_msg",
           "cpu_us_per_msg", "server_cpu_pct", "client_cpu_pct", "other_cpu_pct", "rss_mib")


class NoEcho(RuntimeError):
    """Not one message came back in the window."""


@dataclasses.dataclass
class Live:
    proc: subprocess.Popen
    log: str
    port: int = 0
    ps: psutil.Process | None = None


def _pinned(cpu):
    return lambda: os.sched_setaffinity(0, {cpu})


def _last_line(path: str) -> str:
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "no output"


def _tools(tmp: str, needs_tls: bool) -> tuple[dict, str | None]:
    """{placeholder: path} for the binaries and the TLS certificate, and why
    TLS is not available (None when it is)."""
    tools, no_tls = {"{echo/server.c}": compile_c("echo/server.c")}, None
    try:
        tools["{client}"] = compile_c("echo/client.c", ("-lssl", "-lcrypto"))
    except RuntimeError as exc:
        tools["{client}"] = compile_c("echo/client.c", ("-DNO_TLS",))
        no_tls = f"the client was built without OpenSSL: {str(exc)[-200:]}"
    if needs_tls and not no_tls:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        tools.update({"{cert}": cert, "{key}": key})
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                            "/CN=localhost", "-keyout", key, "-out", cert],
                           capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            no_tls = f"no certificate: openssl req: {getattr(exc, 'stderr', None) or exc}"
    return tools, no_tls


def start_all(names, tools, no_tls, cpu, tmp) -> tuple[dict, dict]:
    """Start the servers at once; ({name: Live}, {name: why not available})."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (
        ROOT, os.environ.get("PYTHONPATH")))))  # reactor from this checkout
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # 13 servers compiling asyncio on one core is slow
    env["PYTHONPYCACHEPREFIX"] = cache_dir("pycache")
    live, unavailable = {}, {}
    for name in names:
        if no_tls and "{cert}" in SERVERS[name]:
            unavailable[name] = no_tls
            continue
        log = os.path.join(tmp, f"{name}.log")
        with open(log, "w") as f:
            argv = [tools.get(a, a) for a in SERVERS[name]]
            live[name] = Live(subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                               stdout=f, stderr=f, preexec_fn=_pinned(cpu)), log)
    deadline = time.monotonic() + 60
    for name, server in list(live.items()):
        while not server.port:
            with open(server.log) as f:
                match = re.search(r"listening on [\d.]+:(\d+)", f.read())
            if match:
                server.port, server.ps = int(match.group(1)), psutil.Process(server.proc.pid)
            elif server.proc.poll() is not None or time.monotonic() > deadline:
                stop(server)
                unavailable[name] = _last_line(server.log)
                del live[name]
                break
            else:
                time.sleep(0.02)
    return live, unavailable


def stop(server: Live) -> dict:
    """SIGTERM (SIGKILL after 5 s); the exit status, the peak RSS (VmHWM:
    psutil has no high-water mark) and the first traceback it logged."""
    peak = None
    if server.proc.poll() is None:
        with open(f"/proc/{server.proc.pid}/status") as f:
            peak = next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM:"))
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    with open(server.log, errors="replace") as f:
        log = f.read()
    traceback = log[log.find("Traceback"):][:3000] if "Traceback" in log else None
    return {"exit": server.proc.returncode, "peak_rss_mib": peak, "traceback": traceback,
            "last_line": _last_line(server.log)}


def _sample(server: Live, client: psutil.Process, cores) -> tuple:
    """(time, server user s, server system s, client CPU s, busy s per core)."""
    s, c = server.ps.cpu_times(), client.cpu_times()
    per_cpu = psutil.cpu_times(percpu=True)
    busy = [(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)
            for t in (per_cpu[i] for i in cores)]
    return time.monotonic(), s.user, s.system, c.user + c.system, busy


def measure(server: Live, client_bin: str, size: int, conns: int, case: Case,
            tls: bool) -> dict:
    """One load of one server; the client's report with CPU, RSS and rates."""
    client_cpu, server_cpu = cpus()
    argv = [client_bin, HOST, str(server.port), str(conns), str(size), str(case.warmup),
            str(case.duration), "--sync", "--prime"] + ["--tls"] * tls
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          preexec_fn=_pinned(client_cpu)) as proc:
        try:
            if not select.select([proc.stdout], [], [], 60)[0] or \
                    proc.stdout.readline() != "measuring\n":
                raise RuntimeError("no start")
            cores, ps = (server_cpu, client_cpu), psutil.Process(proc.pid)
            before = _sample(server, ps, cores)
            proc.stdin.write("g")
            proc.stdin.flush()
            rss = []
            while not select.select([proc.stdout], [], [], 0.5)[0]:
                rss.append((round(time.monotonic() - before[0], 2), server.ps.memory_info().rss))
            report = json.loads(proc.stdout.readline() or "null")
            if report is None:
                raise RuntimeError("no report")
            after = _sample(server, ps, cores)
            rss.append((round(after[0] - before[0], 2), server.ps.memory_info().rss))
        except RuntimeError as exc:
            proc.kill()
            raise RuntimeError(f"load client: {proc.stderr.read().strip() or exc}") from None
        finally:
            proc.kill()
    if not report["messages"]:
        raise NoEcho(f"no message came back in {case.duration} s: {report}")
    wall, user, system, client_s = (a - b for a, b in zip(after[:4], before[:4]))
    n = report["messages"]
    other = (after[4][0] - before[4][0] - user - system, after[4][1] - before[4][1] - client_s)
    return {"msgs_per_s": report["msgs_per_s"], "p50_us": report["latency_us"]["p50"],
            "p99_us": report["latency_us"]["p99"], "user_us_per_msg": user / n * 1e6,
            "sys_us_per_msg": system / n * 1e6, "cpu_us_per_msg": (user + system) / n * 1e6,
            "server_cpu_pct": 100 * (user + system) / wall,
            "client_cpu_pct": 100 * client_s / wall,
            "other_cpu_pct": max(0.0, 100 * max(other) / wall), "rss_mib": rss[-1][1] / MIB,
            "rss_samples": rss, "errors": report["errors"]["total"], "client": report}


def _run(server: Live, tools: dict, name: str, size: int, conns: int, case: Case) -> dict:
    """measure(), or the error; a run in which no message came back is made
    once more (a loaded machine can starve a short window), and says so."""
    for attempt in range(2):
        try:
            return {**measure(server, tools["{client}"], size, conns, case,
                              "{cert}" in SERVERS[name]), "retried": attempt}
        except NoEcho as exc:
            error = exc
        except (OSError, RuntimeError, ValueError, psutil.Error,
                subprocess.SubprocessError) as exc:
            error = exc
            break
    return {"error": f"{type(error).__name__}: {error}"}


def run_case(case: Case, progress=lambda: None) -> dict:
    """Start the case's servers, run every repetition x cell x server, stop them."""
    cells = [(size, conns) for size in case.sizes for conns in case.connections]
    runs, exits, allowed = [], {}, os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="reactor-bench-") as tmp:
        tools, no_tls = _tools(tmp, any("{cert}" in SERVERS[s] for s in case.servers))
        live, unavailable = start_all(case.servers, tools, no_tls, cpus()[1], tmp)
        try:
            os.sched_setaffinity(0, {cpus()[0]})  # the driver waits on the client's core
            for _ in range(len(unavailable) * len(cells) * case.repeat):
                progress()
            for rep in range(case.repeat):
                for i, (size, conns) in enumerate(cells):
                    names = list(live)
                    k = (rep + i) % len(names) if names else 0
                    for name in names[k:] + names[:k]:
                        runs.append({"server": name, "size": size, "connections": conns,
                                     "rep": rep, **_run(live[name], tools, name, size, conns,
                                                        case)})
                        progress()
        finally:
            for name, server in live.items():
                exits[name] = stop(server)
            os.sched_setaffinity(0, allowed)
    return {"config": dataclasses.asdict(case), "unavailable": unavailable, "exits": exits,
            "commands": {s: " ".join(SERVERS[s]).replace(PY, "python") for s in case.servers},
            "runs": runs, **summarize(case, runs, unavailable, exits)}


def summarize(case: Case, runs: list[dict], unavailable: dict, exits: dict) -> dict:
    """Medians per (server, size, connections); the ratios; the soak's verdict."""
    cells = {}
    for run in runs:
        if "error" not in run and run["errors"] == 0:
            cells.setdefault((run["server"], run["size"], run["connections"]), []).append(run)
    summary = [{"server": s, "size": size, "connections": c, "runs": len(rs),
                **{m: statistics.median(r[m] for r in rs) for m in METRICS},
                "msgs_per_s_range": [min(r["msgs_per_s"] for r in rs),
                                     max(r["msgs_per_s"] for r in rs)]}
               for (s, size, c), rs in cells.items()]
    ratios = []
    for num, den, metric, target in RATIOS:
        if num not in case.servers or den not in case.servers:
            continue
        for size in case.sizes:
            for conns in case.connections:
                a, b = cells.get((num, size, conns)), cells.get((den, size, conns))
                row = {"numerator": num, "denominator": den, "metric": metric, "target": target,
                       "size": size, "connections": conns}
                if a and b and statistics.median(r[metric] for r in b) > 0:
                    row["ratio"] = (statistics.median(r[metric] for r in a)
                                    / statistics.median(r[metric] for r in b))
                    row["paired"] = [x[metric] / y[metric] for x in a for y in b
                                     if x["rep"] == y["rep"] and y[metric] > 0]
                elif a and b:  # CPU times come in 10 ms ticks: a short run may see none
                    row["why"] = f"{den}'s {metric} is 0: too short a run"
                else:
                    row["why"] = "; ".join(f"{s} not available: {unavailable[s]}" if s in
                                           unavailable else f"{s}: no successful run"
                                           for s in (num, den) if not cells.get((s, size, conns)))
                ratios.append(row)
    out = {"summary": summary, "ratios": ratios}
    if case.memory_check:
        out["memory"] = memory_verdict(runs, exits, case.duration)
    return out


def memory_verdict(runs: list[dict], exits: dict, duration: float) -> dict:
    """Flat memory: after the first tenth of the run, RSS grows by less than
    max(2 MiB, 5%) and its least-squares slope is under 1 MiB per minute;
    and no echo error, a clean exit, no traceback."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"passed": False, "why": "; ".join(r["error"] for r in runs) or "no run"}
    run, server_exit = ok[0], exits.get(ok[0]["server"], {})
    steady = [(t, b) for t, b in run["rss_samples"] if t >= duration / 10] or run["rss_samples"]
    growth = steady[-1][1] - steady[0][1]
    slope = (statistics.linear_regression([t for t, _ in steady], [b for _, b in steady]).slope
             * 60 if len(steady) > 1 else 0.0)
    flat = growth < max(2 * MIB, 0.05 * steady[0][1]) and slope < MIB
    if _SANITIZED:
        # ASan keeps freed memory in its quarantine (256 MiB by default):
        # RSS grows under it whatever the server does.  Bytes still count.
        flat = True
    return {"rss_mib_start": steady[0][1] / MIB, "rss_mib_end": steady[-1][1] / MIB,
            "peak_rss_mib": server_exit.get("peak_rss_mib"), "growth_kib": growth / 1024,
            "slope_kib_per_min": slope / 1024, "flat": flat,
            "rss_checked": not _SANITIZED,
            "messages": run["client"]["messages"], "errors": run["errors"],
            "passed": flat and run["errors"] == 0 and run["client"]["messages"] > 0
            and server_exit.get("exit") == 0 and not server_exit.get("traceback")}
