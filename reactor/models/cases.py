"""The five models as a case of the echo driver (driver.py): their
servers and what ``python -m reactor models`` measures of them.

For each repetition, each server alone (the non-blocking one spins: it
would take the CPU from the others), started afresh in a rotated order:

1. load: 1, 10, 100 and 1,000 connections, each ping-ponging one 1 KiB
   message at a time, every byte compared; messages per second, p50/p99
   latency, the server's user and system CPU per message;
2. idle: after the 1,000-connection load the connections stay open and
   silent; the server's CPU over a second;
3. 1 active + N idle (libevent's benchmark): N silent connections opened
   first, then one active; what N costs the active one;

then SIGTERM, and its exit status is checked.  Medians over repetitions.
"""

from __future__ import annotations

import dataclasses
import sys

from .driver import Case, Server


def _model(*argv: str, accepts_all: bool = True) -> Server:
    return Server((sys.executable, "-m", *argv, "--port", "0"), accepts_all=accepts_all)


SERVERS: dict[str, Server] = {
    "threads": _model("reactor.models.blocking"),
    "one-at-a-time": _model("reactor.models.blocking", "--one-at-a-time", accepts_all=False),
    "nonblocking": _model("reactor.models.nonblocking"),
    "select": _model("reactor.models.multiplexing", "--selector", "select"),
    "poll": _model("reactor.models.multiplexing", "--selector", "poll"),
    "epoll": _model("reactor.models.multiplexing", "--selector", "epoll"),
    "reactor": _model("reactor.models.multiplexing", "--loop"),
    "signals": _model("reactor.models.signaldriven"),
    "io_uring": _model("reactor.models.asynchronous"),
}
MODEL = {
    "threads": 1,
    "one-at-a-time": 1,
    "nonblocking": 2,
    "select": 3,
    "poll": 3,
    "epoll": 3,
    "reactor": 3,
    "signals": 4,
    "io_uring": 5,
}  # the chapter's numbers

_FULL = Case(
    tuple(SERVERS),
    connections=(1, 10, 100, 1000),
    active_idle=(100, 1000, 10000),
    idle_cpu_at=1000,
    repeat=3,
    warmup=0.3,
    duration=1.0,
    alone=True,
)
PLANS = {
    "full": _FULL,
    "quick": dataclasses.replace(
        _FULL, active_idle=(1000,), repeat=1, warmup=0.1, duration=0.3, idle_seconds=0.5
    ),
    "smoke": dataclasses.replace(
        _FULL,
        connections=(1, 10),
        active_idle=(10,),
        idle_cpu_at=10,
        repeat=1,
        warmup=0.05,
        duration=0.1,
        idle_seconds=0.1,
    ),
}
