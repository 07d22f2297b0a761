"""The echo driver: echo servers loaded by the compiled C client and
measured from /proc, for ``python -m reactor models`` and for the benchmark
suite's end-to-end cases (benchmarks/driver.py).  Standard library only.

Long because it is one procedure (start, load, measure, stop, summarise)
whose steps share the servers' state; and a public module: the benchmark
suite builds on it (Case, Server, run(),
cells(), find(), rotated(), bad_exits(), cpus(), machine(),
load_client_command()), and anyone may, to measure a server of their own
the same way.

A server (``Server``) is a command line that listens on 127.0.0.1 on a port
the system picks (``--port 0``), logs ``listening on HOST:PORT`` to stderr,
and exits 0 on SIGTERM.  A case (``Case``) names its servers, message
sizes, connection counts, repetitions and seconds.  ``run()``:

1. starts the servers pinned to the measured CPU, all at once or, with
   ``alone``, each by itself for each repetition (the non-blocking model
   spins: it would take the CPU from the servers being measured); one that
   does not start is "not available" with the last line it printed, and
   the rest go on;
2. for each repetition, cell (size, connections, idle) and server, in an
   order that rotates every time, runs the client (``loadclient.c``, pinned
   to the other CPU): ``idle`` silent connections first (libevent's
   "1 active + N idle"), one primed connection (``--prime``), then every
   connection ping-pongs one message at a time, every byte compared; after
   the warm-up the client holds still (``--sync``) while the driver reads
   the CPU times, and again at the end of the measured window;
3. with ``idle_cpu_at``, after the load at that many connections, reads the
   server's CPU while they sit silent for ``idle_seconds``;
4. stops the servers (SIGTERM): exit status, traceback, peak RSS;
5. summarises each (server, size, connections, idle) by medians; for a
   soak (``memory_check``), judges whether the server's memory stayed flat.

Figures (proc(5)): the server's user and system CPU per message, every
thread counted (``/proc/PID/stat`` utime and stime, 10 ms ticks), and the
client's CPU; the server's RSS every 0.5 s (``/proc/PID/statm``); "other
load", what other work took of the server's CPU in the window (its busy
time in ``/proc/stat`` minus the server's own).  Not of the client's CPU:
there the kernel's loopback work for the client's packets shows as busy
time charged to no process, about half of that CPU whatever else runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Mapping, Optional, Sequence

from . import _loadclient

HOST = "127.0.0.1"


def load_client_command() -> list[str]:
    """The argv prefix that runs the C load client (built into
    reactor._native; see its usage in reactor/models/loadclient.c)."""
    return _loadclient.command()


MIB = 1024 * 1024
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
METRICS = (
    "msgs_per_s",
    "p50_us",
    "p99_us",
    "user_us_per_msg",
    "sys_us_per_msg",
    "cpu_us_per_msg",
    "server_cpu_pct",
    "client_cpu_pct",
    "other_cpu_pct",
    "rss_mib",
    "served",
    "idle_cpu_pct",
    "idle_other_pct",
)
# CI's sanitizer run preloads ASan into every Python process (.ci/run).
_SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
ONE_AT_A_TIME = (
    "not run: it serves one connection until it closes, so the active client "
    "would wait forever behind the first idle one"
)


@dataclasses.dataclass(frozen=True)
class Server:
    argv: tuple[str, ...]
    tls: bool = False  # the client speaks TLS to it
    http: bool = False  # the client sends HTTP/1.1 requests instead of echo messages
    # holds every connection at once (the one-at-a-time loop does not): the
    # driver waits until it holds them all before measuring
    accepts_all: bool = True


@dataclasses.dataclass(frozen=True)
class Case:
    servers: tuple[str, ...]
    sizes: tuple[int, ...] = (1024,)
    connections: tuple[int, ...] = (100,)
    active_idle: tuple[int, ...] = ()  # N idle beside 1 active, per N
    idle_cpu_at: int = 0  # after the load at this many connections: CPU while silent
    idle_seconds: float = 1.0
    repeat: int = 1
    duration: float = 1.5
    warmup: float = 0.3
    alone: bool = False  # each server started by itself for each repetition
    memory_check: bool = False  # a soak: memory_verdict() on its first run


class NoEcho(RuntimeError):
    """Not one message came back in the window."""


@functools.lru_cache(maxsize=None)  # those it may use at the start: run() pins itself
def cpus() -> tuple[int, int]:
    """(client CPU, server CPU): the first two this process may use (one
    for both on a single CPU).  The client and the driver take the first,
    which also gets more of the machine's interrupts."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[min(1, len(allowed) - 1)]


def _pinned(cpu: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {cpu})


def _last_line(path: str) -> str:
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "no output"


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of every thread of `pid`, live or gone
    (utime and stime in /proc/PID/stat, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def core_busy(cpu: int) -> float:
    """Seconds CPU `cpu` has been busy (not idle, not waiting on IO)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(x) for x in line.split()[1:]]
                return (sum(ticks) - ticks[3] - ticks[4]) / _TICK
    raise RuntimeError(f"no cpu{cpu} line in /proc/stat")


class Live:
    """A server process: its log, port, fds, CPU and memory."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        logdir: str,
        cpu: int,
        env: Optional[dict] = None,
        cwd: Optional[str] = None,
    ):
        self.name, self.port, self.base_fds = name, 0, 0
        self.log = os.path.join(logdir, f"{name}.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_pinned(cpu),
            )

    def wait_listening(self, deadline: float) -> None:
        """Until it logs its port; RuntimeError (its last line) if it exits
        or the deadline passes first."""
        while not self.port:
            with open(self.log, errors="replace") as f:
                match = re.search(r"listening on [\d.]+:(\d+)", f.read())
            if match:
                self.port, self.base_fds = int(match.group(1)), self.fds()
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(_last_line(self.log))
            else:
                time.sleep(0.02)

    def cpu(self) -> tuple[float, float]:
        return process_cpu(self.proc.pid)

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def wait_for_fds(self, count: int, timeout: float = 120.0) -> None:
        """Until it holds `count` more fds than it listened with."""
        deadline = time.monotonic() + timeout
        while self.fds() < self.base_fds + count and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> dict:
        """SIGTERM (SIGKILL after 30 s); its exit status, peak RSS (VmHWM)
        and the first traceback it logged."""
        peak = None
        if self.proc.poll() is None:
            with open(f"/proc/{self.proc.pid}/status") as f:
                peak = next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM:"))
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with open(self.log, errors="replace") as f:
            text = f.read()
        traceback = text[text.find("Traceback") :][:3000] if "Traceback" in text else None
        return {
            "exit": self.proc.returncode,
            "peak_rss_mib": peak,
            "traceback": traceback,
            "last_line": _last_line(self.log),
        }


def _sample(live: Live, client_pid: int) -> tuple:
    """(time, server user s, server system s, client CPU s, busy s of the
    server's CPU)."""
    user, system = live.cpu()
    return (time.monotonic(), user, system, sum(process_cpu(client_pid)), core_busy(cpus()[1]))


def _idle_cpu(live: Live, seconds: float) -> dict:
    """Percent of its CPU the server uses while every connection is
    silent, and what other work took of that CPU meanwhile."""
    server_cpu = cpus()[1]
    time.sleep(min(0.2, seconds))  # the last replies of the load
    (user0, sys0), busy0, start = live.cpu(), core_busy(server_cpu), time.monotonic()
    time.sleep(seconds)
    (user1, sys1), busy1, wall = live.cpu(), core_busy(server_cpu), time.monotonic() - start
    used = 100 * (user1 - user0 + sys1 - sys0) / wall
    return {"idle_cpu_pct": used, "idle_other_pct": max(0.0, 100 * (busy1 - busy0) / wall - used)}


def _figures(report: dict, before: tuple, after: tuple, rss: list) -> dict:
    wall, user, system, client, busy = (a - b for a, b in zip(after, before))
    n = report["messages"]
    other = busy - user - system
    return {
        "msgs_per_s": report["msgs_per_s"],
        "p50_us": report["latency_us"]["p50"],
        "p99_us": report["latency_us"]["p99"],
        "served": report["served"],
        "messages": n,
        "errors": report["errors"]["total"],
        "user_us_per_msg": user / n * 1e6,
        "sys_us_per_msg": system / n * 1e6,
        "cpu_us_per_msg": (user + system) / n * 1e6,
        "server_cpu_pct": 100 * (user + system) / wall,
        "client_cpu_pct": 100 * client / wall,
        "other_cpu_pct": max(0.0, 100 * other / wall),
        "rss_mib": rss[-1][1] / MIB,
        "rss_samples": rss,
        "client": report,
    }


def load(
    live: Live,
    client: Sequence[str],
    server: Server,
    case: Case,
    size: int,
    conns: int,
    idle: int = 0,
    hold: float = 0.0,
) -> dict:
    """One run of the client against a running server: its report with the
    server's CPU per message and RSS; with `hold`, also the server's CPU
    while the connections then sit silent for that long."""
    argv = (
        [
            *client,
            HOST,
            str(live.port),
            str(conns),
            str(size),
            str(case.warmup),
            str(case.duration),
            "--sync",
            "--prime",
        ]
        + ["--tls"] * server.tls
        + ["--http"] * server.http
        + (["--idle", str(idle)] if idle else [])
    )
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_pinned(cpus()[0]),
    ) as proc:
        assert proc.stdin and proc.stdout and proc.stderr  # PIPEs
        try:
            if (
                not select.select([proc.stdout], [], [], 180 + idle / 50)[0]
                or proc.stdout.readline() != "measuring\n"
            ):
                raise RuntimeError("it did not start")
            if server.accepts_all:
                live.wait_for_fds(conns + idle)
            before = _sample(live, proc.pid)
            proc.stdin.write("g")
            proc.stdin.flush()
            rss = []
            while not select.select([proc.stdout], [], [], 0.5)[0]:
                rss.append((round(time.monotonic() - before[0], 2), live.rss()))
                if time.monotonic() - before[0] > case.duration + 60:
                    raise RuntimeError("no report")
            report = json.loads(proc.stdout.readline() or "null")
            if report is None:
                raise RuntimeError("no report")
            after = _sample(live, proc.pid)
            rss.append((round(after[0] - before[0], 2), live.rss()))
            silent = _idle_cpu(live, hold) if hold else {}
        except RuntimeError as exc:
            proc.kill()
            raise RuntimeError(f"load client: {proc.stderr.read().strip() or exc}") from None
        finally:
            proc.kill()
    if not report["messages"]:
        raise NoEcho(f"no message came back in {case.duration} s: {report}")
    return {**_figures(report, before, after, rss), **silent}


def cells(case: Case) -> list[tuple[int, int, int]]:
    """(size, connections, idle) of every measurement of a server."""
    out = [(size, conns, 0) for size in case.sizes for conns in case.connections]
    return out + [(size, 1, idle) for size in case.sizes for idle in case.active_idle]


def _measure(
    live: Live, client: Sequence[str], server: Server, case: Case, cell: tuple, rep: int
) -> dict:
    """load(), or why not; a run in which no message came back is made
    once more (a loaded machine can starve a short window), and says so."""
    size, conns, idle = cell
    run: dict = {"server": live.name, "rep": rep, "size": size, "connections": conns, "idle": idle}
    if idle and not server.accepts_all:
        return {**run, "skipped": ONE_AT_A_TIME}
    hold = case.idle_seconds if (conns == case.idle_cpu_at and not idle) else 0.0
    for attempt in range(2):
        try:
            return {
                **run,
                **load(live, client, server, case, size, conns, idle, hold),
                "retried": attempt,
            }
        except NoEcho as exc:
            error: Exception = exc
        except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
            error = exc
            break
    return {**run, "error": f"{type(error).__name__}: {error}"}


def rotated(items: list, k: int) -> list:
    k = k % len(items) if items else 0
    return items[k:] + items[:k]


class _Run:
    """One run(): where the servers' logs go, how they are started, what
    came of it."""

    def __init__(
        self,
        case: Case,
        servers: Mapping[str, Server],
        client: Sequence[str],
        logdir: str,
        progress: Callable[[dict], None],
        substitute: Mapping[str, str],
        env: Optional[dict],
        cwd: Optional[str],
    ):
        self.case, self.servers, self.client, self.logdir = case, servers, client, logdir
        self.progress, self.substitute, self.env, self.cwd = progress, substitute, env, cwd
        self.runs: list[dict] = []
        self.unavailable: dict[str, str] = {}
        self.exits: dict[str, list] = {}

    def start(self, names: list[str]) -> dict[str, Live]:
        """Start them at once; those that listen by the deadline."""
        lives = {
            name: Live(
                name,
                [self.substitute.get(a, a) for a in self.servers[name].argv],
                self.logdir,
                cpus()[1],
                self.env,
                self.cwd,
            )
            for name in names
        }
        deadline = time.monotonic() + 60
        for name, live in list(lives.items()):
            try:
                live.wait_listening(deadline)
            except RuntimeError as exc:
                self.unavailable[name] = str(exc)  # wait_listening() stopped it
                del lives[name]
                self.progress(
                    {
                        "server": name,
                        "unavailable": str(exc),
                        "cells": len(cells(self.case)) * self.case.repeat,
                    }
                )
        return lives

    def measure(self, live: Live, rep: int, cell: tuple) -> None:
        run = _measure(live, self.client, self.servers[live.name], self.case, cell, rep)
        self.runs.append(run)
        self.progress(run)

    def stop(self, lives: dict[str, Live]) -> None:
        for name, live in lives.items():
            self.exits.setdefault(name, []).append(live.stop())

    def all_at_once(self) -> None:
        lives = self.start([n for n in self.case.servers if n not in self.unavailable])
        try:
            for rep in range(self.case.repeat):
                for i, cell in enumerate(cells(self.case)):
                    for name in rotated(list(lives), rep + i):
                        self.measure(lives[name], rep, cell)
        finally:
            self.stop(lives)

    def alone(self) -> None:
        names = [n for n in self.case.servers if n not in self.unavailable]
        for rep in range(self.case.repeat):
            for name in rotated(names, rep):
                if name in self.unavailable:
                    continue
                lives = self.start([name])
                try:
                    for cell in cells(self.case):
                        if name in lives:
                            self.measure(lives[name], rep, cell)
                finally:
                    self.stop(lives)


def run(
    case: Case,
    servers: Mapping[str, Server],
    progress: Callable[[dict], None] = lambda run: None,
    *,
    client: Optional[Sequence[str]] = None,
    unavailable: Optional[dict] = None,
    substitute: Optional[Mapping[str, str]] = None,
    env: Optional[dict] = None,
    cwd: Optional[str] = None,
) -> dict:
    """Measure `case`; ``progress(run)`` after every run (and once, with
    "unavailable" and the number of "cells" skipped, for a server that did
    not start).  `unavailable`: servers known not to run here, and why;
    `substitute`: words of the servers' command lines replaced at run time
    (binaries, certificates); `client`: the load client's command (default:
    loadclient.c as built into reactor._native, without OpenSSL: a case with
    a server that speaks TLS passes its own)."""
    client = client or load_client_command()
    allowed = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="reactor-echo-") as logdir:
        state = _Run(case, servers, client, logdir, progress, substitute or {}, env, cwd)
        state.unavailable.update(unavailable or {})
        os.sched_setaffinity(0, {cpus()[0]})  # the driver waits on the client's CPU
        try:
            if case.alone:
                state.alone()
            else:
                state.all_at_once()
        finally:
            os.sched_setaffinity(0, allowed)
    result = {
        "case": dataclasses.asdict(case),
        "cpus": cpus(),
        "commands": {
            n: " ".join(servers[n].argv).replace(sys.executable, "python") for n in case.servers
        },
        "unavailable": state.unavailable,
        "exits": state.exits,
        "runs": state.runs,
        "summary": summarize(state.runs),
    }
    if case.memory_check:
        result["memory"] = memory_verdict(result, case.duration)
    return result


def summarize(runs: list[dict]) -> list[dict]:
    """Medians per (server, size, connections, idle) over the runs that
    completed without a byte error; why, where none did."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["server"], r["size"], r["connections"], r["idle"]), []).append(r)
    summary = []
    for (server, size, conns, idle), group in groups.items():
        good = [r for r in group if "error" not in r and "skipped" not in r and not r["errors"]]
        row: dict = {
            "server": server,
            "size": size,
            "connections": conns,
            "idle": idle,
            "runs": len(good),
        }
        for metric in METRICS:
            values = [r[metric] for r in good if metric in r]
            if values:
                row[metric] = statistics.median(values)
        if good:
            row["msgs_per_s_range"] = [
                min(r["msgs_per_s"] for r in good),
                max(r["msgs_per_s"] for r in good),
            ]
        else:
            row["why"] = next(
                r.get("skipped") or r.get("error") or f"{r['errors']} byte errors" for r in group
            )
        summary.append(row)
    return summary


def find(summary: list[dict], server: str, size: int, conns: int, idle: int = 0) -> Optional[dict]:
    return next(
        (
            row
            for row in summary
            if (row["server"], row["size"], row["connections"], row["idle"])
            == (server, size, conns, idle)
        ),
        None,
    )


def bad_exits(result: dict) -> dict[str, list]:
    """Server -> its exits that were not clean (a status, a traceback)."""
    return {
        name: bad
        for name, exits in result["exits"].items()
        if (bad := [e for e in exits if e["exit"] or e["traceback"]])
    }


def memory_verdict(result: dict, duration: float) -> dict:
    """Flat memory: after the first tenth of the run, RSS grows by less than
    max(2 MiB, 5%) and its least-squares slope is under 1 MiB per minute;
    and no byte error, a clean exit, no traceback."""
    ok = [r for r in result["runs"] if "error" not in r]
    if not ok:
        return {"passed": False, "why": "; ".join(r["error"] for r in result["runs"]) or "no run"}
    run, server_exit = ok[0], result["exits"].get(ok[0]["server"], [{}])[-1]
    steady = [(t, b) for t, b in run["rss_samples"] if t >= duration / 10] or run["rss_samples"]
    growth = steady[-1][1] - steady[0][1]
    slope = (
        statistics.linear_regression([t for t, _ in steady], [b for _, b in steady]).slope * 60
        if len(steady) > 1
        else 0.0
    )
    # ASan keeps freed memory in its quarantine (256 MiB by default): RSS
    # grows under it whatever the server does.  Bytes still count.
    flat = _SANITIZED or (growth < max(2 * MIB, 0.05 * steady[0][1]) and slope < MIB)
    return {
        "rss_mib_start": steady[0][1] / MIB,
        "rss_mib_end": steady[-1][1] / MIB,
        "peak_rss_mib": server_exit.get("peak_rss_mib"),
        "growth_kib": growth / 1024,
        "slope_kib_per_min": slope / 1024,
        "flat": flat,
        "rss_checked": not _SANITIZED,
        "messages": run["messages"],
        "errors": run["errors"],
        "passed": flat
        and run["errors"] == 0
        and run["messages"] > 0
        and server_exit.get("exit") == 0
        and not server_exit.get("traceback"),
    }


def _git(root: str, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True
        ).stdout.strip()
    except OSError:  # no git
        return ""


def machine() -> dict:
    """The machine, the interpreter, the date, and the git revision of the
    checkout the package runs from (+dirty when the measured code has
    uncommitted changes), if it runs from one.  The benchmarks' too."""
    with open("/proc/cpuinfo") as f:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
            platform.machine(),
        )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = "not a git checkout"
    if _git(root, "rev-parse", "--show-toplevel") == root:
        git = _git(root, "rev-parse", "--short", "HEAD")
        if _git(
            root,
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "reactor",
            "_native",
            "benchmarks",
            "setup.py",
            ":!*/recorded",
        ):
            git += "+dirty"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "git": git,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
