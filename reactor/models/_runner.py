"""``python -m reactor models``: every model's server against the compiled
load client, side by side in one run.

For each repetition, each server in an order rotated every time: start it
(pinned to one CPU, the client to the other), then

1. load: 1, 10, 100 and 1,000 connections, each ping-ponging one message
   of SIZE bytes at a time, every byte compared by the client; messages per
   second, p50/p99 latency (the client's), the server's user and system CPU
   per message (/proc/PID/stat, all its threads, read while the client
   holds still at both ends of the measured window);
2. idle: after the 1,000-connection load the client keeps its connections
   open and silent; the server's CPU over IDLE seconds;
3. 1 active + N idle (libevent's benchmark): N silent connections opened
   first, then one active; what N costs the active one;

then SIGTERM, and its exit status is checked.  Medians over repetitions.
A server that cannot start (io_uring refused, reactor.Ring missing) is a
row "not available" with its last line of output; the rest go on.
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
import sys
import tempfile
import time
from typing import Optional

from . import _loadclient

HOST = "127.0.0.1"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    model: int  # the chapter's model, 1 to 5
    argv: tuple
    # accepts every connection at once (the one-at-a-time loop does not):
    # the runner waits for it to hold them all before measuring
    accepts_all: bool = True


SERVERS: tuple[Server, ...] = (
    Server("threads", 1, ("reactor.models.blocking",)),
    Server("one-at-a-time", 1, ("reactor.models.blocking", "--one-at-a-time"), False),
    Server("nonblocking", 2, ("reactor.models.nonblocking",)),
    Server("select", 3, ("reactor.models.multiplexing", "--selector", "select")),
    Server("poll", 3, ("reactor.models.multiplexing", "--selector", "poll")),
    Server("epoll", 3, ("reactor.models.multiplexing", "--selector", "epoll")),
    Server("reactor", 3, ("reactor.models.multiplexing", "--loop")),
    Server("signals", 4, ("reactor.models.signaldriven",)),
    Server("io_uring", 5, ("reactor.models.asynchronous",)),
)
ONE_AT_A_TIME_IDLE = ("not run: it serves one connection until it closes, so the active "
                      "client waits forever behind the first idle one")


@dataclasses.dataclass(frozen=True)
class Plan:
    connections: tuple = (1, 10, 100, 1000)
    active_idle: tuple = (100, 1000, 10000)  # N idle beside 1 active
    idle_cpu_connections: int = 1000
    repeat: int = 3
    warmup: float = 0.3
    duration: float = 1.0
    idle_seconds: float = 1.0
    size: int = 1024


PLANS = {
    "full": Plan(),
    "quick": Plan(active_idle=(1000,), repeat=1, warmup=0.1, duration=0.3, idle_seconds=0.5),
    "smoke": Plan(connections=(1, 10), active_idle=(10,), idle_cpu_connections=10, repeat=1,
                  warmup=0.05, duration=0.1, idle_seconds=0.1),
}


def cpus() -> tuple:
    """(client CPU, server CPU): the first two this process may use (one
    for both on a single CPU)."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[min(1, len(allowed) - 1)]


def _pinned(cpu):
    return lambda: os.sched_setaffinity(0, {cpu})


def _last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "no output"


class Live:
    """A running server: its process, log and port."""

    def __init__(self, server: Server, logdir: str, cpu: int):
        self.server = server
        self.log = os.path.join(logdir, f"{server.name}.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", *server.argv, "--port", "0"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_pinned(cpu))
        deadline, self.port = time.monotonic() + 30, 0
        while not self.port:
            with open(self.log, errors="replace") as f:
                match = re.search(r"listening on [\d.]+:(\d+)", f.read())
            if match:
                self.port = int(match.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(_last_line(self.log))
            else:
                time.sleep(0.01)
        self.base_fds = self.fds()

    def cpu(self) -> tuple:
        """(user, system) CPU seconds of every thread, live or gone (proc(5):
        utime and stime in /proc/PID/stat, in clock ticks)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / _TICK, int(fields[12]) / _TICK

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def wait_for_fds(self, count: int, timeout: float = 120.0) -> None:
        """Until the server holds `count` more fds than it listens with."""
        deadline = time.monotonic() + timeout
        while self.fds() < self.base_fds + count and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> dict:
        """SIGTERM; the exit status (SIGKILL after 30 s) and any traceback."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with open(self.log, errors="replace") as f:
            text = f.read()
        return {"exit": self.proc.returncode, "traceback": "Traceback" in text,
                "stopped_cleanly": self.proc.returncode == 0 and "stopped" in text,
                "last_line": _last_line(self.log)}


def core_busy(cpu: int) -> float:
    """Seconds CPU `cpu` has spent busy (not idle or waiting on IO), from
    /proc/stat: what the server used plus what other work took from it."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(x) for x in line.split()[1:]]
                return (sum(ticks) - ticks[3] - ticks[4]) / _TICK
    raise RuntimeError(f"no cpu{cpu} line in /proc/stat")


def _read_line(proc, timeout: float) -> str:
    if not select.select([proc.stdout], [], [], timeout)[0]:
        raise RuntimeError(f"the load client said nothing for {timeout:.0f} s")
    return proc.stdout.readline()


def load(live: Live, client: str, plan: Plan, conns: int, idle: int = 0,
         hold: float = 0.0) -> dict:
    """One load of a server: the client's report with the server's CPU per
    message; with `hold`, also the server's CPU while the connections sit
    silent afterwards for that long."""
    client_cpu, server_cpu = cpus()
    argv = [client, HOST, str(live.port), str(conns), str(plan.size), str(plan.warmup),
            str(plan.duration), "--sync", "--prime"] + (["--idle", str(idle)] if idle else [])
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          preexec_fn=_pinned(client_cpu)) as proc:
        assert proc.stdin is not None and proc.stderr is not None  # PIPEs
        try:
            if _read_line(proc, 180 + idle / 50) != "measuring\n":
                raise RuntimeError(proc.stderr.read().strip() or "the load client failed")
            if live.server.accepts_all:
                live.wait_for_fds(conns + idle)
            (user0, sys0), busy0, start = live.cpu(), core_busy(server_cpu), time.monotonic()
            proc.stdin.write("g")
            proc.stdin.flush()
            report = json.loads(_read_line(proc, plan.duration + 60) or "null")
            if report is None:
                raise RuntimeError(proc.stderr.read().strip() or "the load client failed")
            (user1, sys1), busy1, wall = live.cpu(), core_busy(server_cpu), \
                time.monotonic() - start
            silent = _idle_cpu(live, server_cpu, hold) if hold else {}
        finally:
            proc.kill()
    n = report["messages"]
    result = {"msgs_per_s": report["msgs_per_s"], "p50_us": report["latency_us"]["p50"],
              "p99_us": report["latency_us"]["p99"], "served": report["served"],
              "errors": report["errors"]["total"], "messages": n,
              # the share of the server's CPU that other processes took
              "other_pct": max(0.0, 100 * (busy1 - busy0 - (user1 - user0 + sys1 - sys0)) / wall),
              **silent}
    if n:
        result["user_us_per_msg"] = (user1 - user0) / n * 1e6
        result["sys_us_per_msg"] = (sys1 - sys0) / n * 1e6
    return result


def _idle_cpu(live: Live, cpu: int, seconds: float) -> dict:
    """Percent of its CPU the server uses while every connection is silent,
    and what other work took of that CPU meanwhile."""
    time.sleep(min(0.2, seconds))  # the last replies of the load
    (user0, sys0), busy0, start = live.cpu(), core_busy(cpu), time.monotonic()
    time.sleep(seconds)
    (user1, sys1), busy1, wall = live.cpu(), core_busy(cpu), time.monotonic() - start
    server = 100 * (user1 - user0 + sys1 - sys0) / wall
    return {"idle_cpu_pct": server,
            "idle_other_pct": max(0.0, 100 * (busy1 - busy0) / wall - server)}


def cells(server: Server, plan: Plan):
    """(kind, connections, idle) of every measurement of one server."""
    for conns in plan.connections:
        yield "load", conns, 0
    for idle in plan.active_idle:
        yield "active+idle", 1, idle


def run_server(server: Server, plan: Plan, client: str, logdir: str, rep: int,
               progress) -> list:
    """Start one server, measure every cell, stop it; the runs."""
    _, server_cpu = cpus()
    runs = []
    try:
        live = Live(server, logdir, server_cpu)
    except RuntimeError as exc:
        return [{"server": server.name, "rep": rep, "unavailable": str(exc)}]
    try:
        for kind, conns, idle in cells(server, plan):
            run = {"server": server.name, "rep": rep, "kind": kind, "connections": conns,
                   "idle": idle}
            if kind == "active+idle" and not server.accepts_all:
                run["skipped"] = ONE_AT_A_TIME_IDLE
            else:
                hold = plan.idle_seconds if (kind == "load" and
                                              conns == plan.idle_cpu_connections) else 0.0
                try:
                    run.update(load(live, client, plan, conns, idle, hold))
                except (OSError, RuntimeError, ValueError) as exc:
                    run["error"] = f"{type(exc).__name__}: {exc}"
            runs.append(run)
            progress(run)
    finally:
        exit_info = live.stop()
    runs.append({"server": server.name, "rep": rep, "kind": "exit", **exit_info})
    return runs


def run(plan: Plan, progress, servers=SERVERS) -> dict:
    """Every server x repetition, rotated; the runs and their medians."""
    client = _loadclient.path()
    runs = []
    with tempfile.TemporaryDirectory(prefix="reactor-models-") as logdir:
        for rep in range(plan.repeat):
            k = rep % len(servers)
            for server in servers[k:] + servers[:k]:
                runs.extend(run_server(server, plan, client, logdir, rep, progress))
    return {"plan": dataclasses.asdict(plan), "cpus": cpus(),
            "servers": {s.name: {"model": s.model, "command": "python -m " + " ".join(s.argv)
                                 + " --port 0"} for s in servers},
            "runs": runs, "summary": summarize(runs)}


METRICS = ("msgs_per_s", "p50_us", "p99_us", "user_us_per_msg", "sys_us_per_msg",
           "idle_cpu_pct", "idle_other_pct", "other_pct", "served")


def summarize(runs: list) -> list:
    """Medians per (server, kind, connections, idle) over the runs that
    completed without a byte error; the reasons of the others."""
    groups: dict = {}
    for run in runs:
        if run.get("kind") in ("load", "active+idle"):
            key = (run["server"], run["kind"], run["connections"], run["idle"])
            groups.setdefault(key, []).append(run)
    summary = []
    for (server, kind, conns, idle), group in groups.items():
        good = [r for r in group if "msgs_per_s" in r and r["errors"] == 0 and r["messages"]]
        row = {"server": server, "kind": kind, "connections": conns, "idle": idle,
               "runs": len(good)}
        for metric in METRICS:
            values = [r[metric] for r in good if metric in r]
            if values:
                row[metric] = statistics.median(values)
        if not good:
            row["why"] = next((r.get("skipped") or r.get("error") or
                               f"{r.get('errors')} byte errors, {r.get('messages')} messages"
                               for r in group), "no run")
        summary.append(row)
    return summary


def unavailable(runs: list) -> dict:
    return {r["server"]: r["unavailable"] for r in runs if "unavailable" in r}


def exits(runs: list) -> dict:
    """Server -> the exits that were not clean (status, traceback)."""
    bad: dict = {}
    for r in runs:
        if r.get("kind") == "exit" and (r["exit"] != 0 or r["traceback"]):
            bad.setdefault(r["server"], []).append(r)
    return bad


def find(summary: list, server: str, kind: str, conns: int, idle: int = 0) -> Optional[dict]:
    for row in summary:
        if (row["server"], row["kind"], row["connections"], row["idle"]) == \
                (server, kind, conns, idle):
            return row
    return None
