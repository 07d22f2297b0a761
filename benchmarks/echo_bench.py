"""End-to-end echo benchmark: reactor's echo server next to the baselines.

Run from the repository root::

    python -m benchmarks.echo_bench                       # 1 KiB x 100 connections (~6 min)
    python -m benchmarks.echo_bench --quick               # smoke run (< 30 s)
    python -m benchmarks.echo_bench --size 1024,10240,102400 --connections 1,10,100
    python -m benchmarks.echo_bench --servers reactor,chapter-selectors --repeat 5
    python -m benchmarks.echo_bench --json echo.json      # + machine-readable

Every server is started once, as its own process pinned to one core
(``taskset -c 1``), on a free 127.0.0.1 port, and they all stay up (idle
ones sleep in their poller) while the same compiled C client
(benchmarks/echo/client.c, built with gcc at run time into a cache dir),
pinned to the other core (``taskset -c 0``), loads them one at a time: C
connections, each doing ping-pong of M-byte messages -- send M bytes, wait
for the M bytes to come back, compare them, repeat -- for a warm-up, then D
measured seconds.  With several sizes and connection counts every (size,
connections) cell is measured for every server; servers are interleaved
within a cell (the order rotates with each cell and repetition), so runs
compared with each other are seconds apart.

Before each measurement one connection does a few round trips and closes
(asyncio's first reads otherwise keep glibc mapping and unmapping a 256 KiB
buffer per read, CPython issue 85451).  The client reads the server's CPU
times (``/proc/PID/stat`` utime/stime, and the exact total from
``/proc/PID/task/*/schedstat``) at the very start and end of the measured
window, so CPU per message covers that window only.  The report gives
medians with min-max spread.

Exit status: 0 normally; 1 with ``--check-targets`` when a target is missed
or a ratio could not be computed; 2 when a run failed (server did not start,
echo errors, client failure).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from benchmarks._common import (PY, ROOT, bench_cpus, compile_c, log, machine_info, pin_argv,
                                run_cli, uvloop_version)

ECHO_DIR = os.path.join(ROOT, "benchmarks", "echo")
HOST = "127.0.0.1"
# The servers import reactor from this checkout, whatever else is installed.
SERVER_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))

# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

# Those the issue compares, in the order the tables and plots show them.
SUITE_SERVERS = (
    "reactor",
    "chapter-selectors",
    "asyncio-protocol",
    "asyncio-protocol-reactor",
    "asyncio-streams",
    "asyncio-streams-reactor",
    "uvloop",
    "c-epoll",
)
DEFAULT_SERVERS = SUITE_SERVERS[:6] + ("asyncio-sock", "asyncio-sock-reactor") + SUITE_SERVERS[6:]


@dataclass
class ServerSpec:
    name: str
    description: str
    needs: str  # "reactor-cli", "reactor", "uvloop", "c", ""
    argv: object  # callable(port, bins) -> list[str]


def _py_script(script, *extra):
    path = os.path.join(ECHO_DIR, script)
    return lambda port, bins: [PY, path, "--host", HOST, "--port", str(port), *extra]


def _reactor_cli(*extra):
    return lambda port, bins: [PY, "-m", "reactor", "echo", "--raw", "--host", HOST,
                               "--port", str(port), *extra]


def _asyncio(mode, loop):
    return _py_script("asyncio_server.py", "--mode", mode, "--loop", loop)


SERVERS = {s.name: s for s in (
    ServerSpec("reactor", "python -m reactor echo --raw (reactor.Reactor)", "reactor-cli",
               _reactor_cli()),
    ServerSpec("reactor-poll", "python -m reactor echo --raw --backend poll", "reactor-cli",
               _reactor_cli("--backend", "poll")),
    ServerSpec("reactor-select", "python -m reactor echo --raw --backend select", "reactor-cli",
               _reactor_cli("--backend", "select")),
    ServerSpec("chapter-selectors", "the chapter's bare loop on selectors.DefaultSelector", "",
               _py_script("chapter_server.py")),
    ServerSpec("chapter-reactor", "the chapter's bare loop on reactor.DefaultSelector", "reactor",
               _py_script("chapter_server.py", "--selector", "reactor")),
    ServerSpec("asyncio-protocol", "asyncio Protocol, stdlib default loop", "",
               _asyncio("protocol", "stdlib")),
    ServerSpec("asyncio-protocol-reactor",
               "asyncio Protocol, SelectorEventLoop(reactor.DefaultSelector())", "reactor",
               _asyncio("protocol", "reactor")),
    ServerSpec("asyncio-streams", "asyncio.start_server, StreamReader/StreamWriter, stdlib loop",
               "", _asyncio("streams", "stdlib")),
    ServerSpec("asyncio-streams-reactor", "asyncio streams on reactor.DefaultSelector", "reactor",
               _asyncio("streams", "reactor")),
    ServerSpec("asyncio-sock", "asyncio sock_recv/sock_sendall, stdlib default loop", "",
               _asyncio("sock", "stdlib")),
    ServerSpec("asyncio-sock-reactor", "asyncio sock_recv/sock_sendall, reactor.DefaultSelector",
               "reactor", _asyncio("sock", "reactor")),
    ServerSpec("uvloop", "asyncio Protocol on uvloop", "uvloop", _asyncio("protocol", "uvloop")),
    ServerSpec("uvloop-streams", "asyncio streams on uvloop", "uvloop",
               _asyncio("streams", "uvloop")),
    ServerSpec("uvloop-sock", "asyncio sock_recv/sock_sendall on uvloop", "uvloop",
               _asyncio("sock", "uvloop")),
    ServerSpec("c-epoll", "minimal C epoll server (benchmarks/echo/server.c)", "c",
               lambda port, bins: [bins["server"], HOST, str(port)]),
)}

# (name, numerator server, denominator server, metric, target, "<=" or ">=")
TARGETS = (
    ("reactor user-CPU/msg vs chapter-selectors", "reactor", "chapter-selectors",
     "user_us_per_msg", 1.15, "<="),
    ("reactor user-CPU/msg vs asyncio-protocol", "reactor", "asyncio-protocol",
     "user_us_per_msg", 0.85, "<="),
    ("asyncio-sock-reactor msgs per server-CPU-s vs asyncio-sock", "asyncio-sock-reactor",
     "asyncio-sock", "msgs_per_cpu_s", 1.2, ">="),
)
# reported without a target
EXTRA_RATIOS = (
    ("asyncio-protocol-reactor user-CPU/msg vs asyncio-protocol", "asyncio-protocol-reactor",
     "asyncio-protocol", "user_us_per_msg"),
    ("asyncio-streams-reactor user-CPU/msg vs asyncio-streams", "asyncio-streams-reactor",
     "asyncio-streams", "user_us_per_msg"),
    ("chapter-reactor user-CPU/msg vs chapter-selectors", "chapter-reactor",
     "chapter-selectors", "user_us_per_msg"),
    ("reactor user-CPU/msg vs uvloop", "reactor", "uvloop", "user_us_per_msg"),
    ("reactor msgs/s vs c-epoll", "reactor", "c-epoll", "msgs_per_s"),
)

# --------------------------------------------------------------------------
# Child processes: every one is tracked and killed at exit, whatever happens
# --------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen] = []


def _spawn(argv, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(argv, **kw)
    _CHILDREN.append(proc)
    return proc


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
    if proc in _CHILDREN:
        _CHILDREN.remove(proc)
    return proc.returncode


def _kill_all_children() -> None:
    for proc in list(_CHILDREN):
        try:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
        except (OSError, subprocess.SubprocessError):
            pass
        _CHILDREN.remove(proc)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# Build the C client and server
# --------------------------------------------------------------------------

def build_binaries(log) -> dict:
    """Compile client.c and server.c (cached by source hash); name -> path."""
    bins = {}
    for name in ("client", "server"):
        bins[name], bins["gcc"] = compile_c(os.path.join(ECHO_DIR, f"{name}.c"), f"echo-{name}",
                                            log)
    return bins


# --------------------------------------------------------------------------
# Availability of the optional servers
# --------------------------------------------------------------------------

def _probe(argv, timeout=30) -> tuple[bool, str]:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    msg = (res.stderr or res.stdout).strip().splitlines()
    return res.returncode == 0, (msg[-1] if msg else f"exit {res.returncode}")


def check_available(names, bins) -> dict:
    """name -> None when usable, else the reason it is skipped."""
    cache: dict[str, tuple[bool, str]] = {}

    def need(kind):
        if kind not in cache:
            if kind == "reactor":
                cache[kind] = _probe([PY, "-c", "import reactor; reactor.DefaultSelector().close()"])
            elif kind == "reactor-cli":
                ok, why = need("reactor")
                if ok:
                    ok, why = _probe([PY, "-m", "reactor", "echo", "--help"])
                    if not ok:
                        why = f"`python -m reactor echo` is not available yet ({why})"
                cache[kind] = (ok, why)
            elif kind == "uvloop":
                ok, why = _probe([PY, "-c", "import uvloop"])
                cache[kind] = (ok, why if ok else f"uvloop not installed ({why}); pip install uvloop")
            elif kind == "c":
                cache[kind] = ("server" in bins, "C server not built")
            else:
                cache[kind] = (True, "")
        return cache[kind]

    out = {}
    for name in names:
        ok, why = need(SERVERS[name].needs) if SERVERS[name].needs else (True, "")
        out[name] = None if ok else why
    return out


# --------------------------------------------------------------------------
# One measured run
# --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _tail(path: str, n: int = 8) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


def _read_log(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _warm_up(port: int, size: int, rounds: int = 10) -> None:
    """One connection, a few verified round trips, closed."""
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    with socket.create_connection((HOST, port), timeout=10) as s:
        for _ in range(rounds):
            s.sendall(payload)
            got = bytearray()
            while len(got) < size:
                chunk = s.recv(size - len(got))
                if not chunk:
                    raise RuntimeError("warm-up: server closed the connection")
                got += chunk
            if got != payload:
                raise RuntimeError("warm-up: echoed bytes differ from those sent")


@dataclass
class RunResult:
    server: str
    rep: int
    size: int
    connections: int
    ok: bool
    error: str = ""
    notes: list = field(default_factory=list)
    client: dict = field(default_factory=dict)
    derived: dict = field(default_factory=dict)
    retries: int = 0


def start_server(spec: ServerSpec, bins, cpu: int, logdir: str, tag: str,
                 timeout: float = 30.0):
    """Start a server on a free port; returns (proc, port, logpath, notes)."""
    last_err = ""
    for attempt in range(3):
        port = free_port()
        argv, preexec = pin_argv(cpu, spec.argv(port, bins))
        logpath = os.path.join(logdir, f"{tag}-{attempt}.log")
        with open(logpath, "wb") as logf:
            proc = _spawn(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                          cwd=ROOT, preexec_fn=preexec, start_new_session=True, env=SERVER_ENV)
        notes = []
        want = f"listening on {HOST}:{port}"
        t0 = time.monotonic()
        ready = False
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                break
            if want in _read_log(logpath):
                ready = True
                break
            if time.monotonic() - t0 > 3.0:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    notes.append(f"no '{want}' line on stderr; port accepted connections")
                    ready = True
                    break
                except OSError:
                    pass
            time.sleep(0.02)
        if ready:
            return proc, port, logpath, notes
        rc = _stop(proc, grace=2)
        last_err = (f"server did not become ready (exit {rc}, attempt {attempt + 1}): "
                    f"{_tail(logpath)}")
        if rc is None or "Address already in use" not in _read_log(logpath):
            break
    raise RuntimeError(last_err)


def _cpu_busy(ticks: list[int]) -> int:
    # user nice system idle iowait irq softirq steal
    return ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]


def derive(c: dict, client_cpu: int, server_cpu: int) -> dict:
    n = c["messages"]
    dur = c["duration_s"]
    sc = c["server_cpu"]
    tck = sc["clk_tck"] or 100
    user_s = sc["utime_ticks"] / tck
    sys_s = sc["stime_ticks"] / tck
    total_s = sc["sched_ns"] / 1e9 if sc["sched_ns"] > 0 else user_s + sys_s
    cli_s = c["client_cpu"]["user_s"] + c["client_cpu"]["sys_s"]
    d = {
        "msgs_per_s": n / dur if dur > 0 else 0.0,
        "p50_us": c["latency_us"]["p50"],
        "p99_us": c["latency_us"]["p99"],
        "user_us_per_msg": user_s / n * 1e6 if n else float("nan"),
        "sys_us_per_msg": sys_s / n * 1e6 if n else float("nan"),
        "cpu_us_per_msg": total_s / n * 1e6 if n else float("nan"),
        "msgs_per_cpu_s": n / total_s if total_s > 0 else float("nan"),
        "server_cpu_pct": 100 * total_s / dur if dur > 0 else 0.0,
        "client_cpu_pct": 100 * cli_s / dur if dur > 0 else 0.0,
        "errors": c["errors"]["total"],
    }
    # CPU used on each core by anything but the server / the client
    # (other processes on this shared machine, ksoftirqd, ...)
    ct = c.get("cpu_ticks", {})
    for label, cpu, own in (("other_on_server_core_pct", server_cpu, total_s),
                            ("other_on_client_core_pct", client_cpu, cli_s)):
        ticks = ct.get(f"cpu{cpu}")
        if ticks and dur > 0 and server_cpu != client_cpu:
            d[label] = max(0.0, 100 * (_cpu_busy(ticks) / tck - own) / dur)
    return d


class LiveServers:
    """Every server of the run, started once and kept up; one restarted if it died."""

    def __init__(self, names, bins, cpu, logdir, log):
        self.bins, self.cpu, self.logdir, self.log = bins, cpu, logdir, log
        self.live: dict[str, tuple] = {}
        self.failed: dict[str, str] = {}
        self.starts: dict[str, int] = {}
        for name in names:
            self._start(name)

    def _start(self, name):
        self.starts[name] = self.starts.get(name, 0) + 1
        try:
            self.live[name] = start_server(SERVERS[name], self.bins, self.cpu, self.logdir,
                                           f"{name}-{self.starts[name]}")
            self.failed.pop(name, None)
        except RuntimeError as exc:
            self.failed[name] = str(exc)
            self.live.pop(name, None)

    def get(self, name):
        """(proc, port, logpath, notes) of a running server; raises RuntimeError."""
        if name in self.live and self.live[name][0].poll() is not None:
            proc, _port, logpath, _notes = self.live.pop(name)
            self.log(f"{name} exited (status {proc.returncode}): {_tail(logpath, 3)}; restarting")
            self._start(name)
        if name not in self.live:
            raise RuntimeError(self.failed.get(name, "server not running"))
        return self.live[name]

    def stop_all(self) -> dict:
        """Stop every server; name -> notes about a bad exit."""
        notes = {}
        for name, (proc, _port, logpath, _notes) in self.live.items():
            rc = _stop(proc)
            if rc not in (0, -signal.SIGTERM, None):
                notes[name] = f"exit status {rc} after SIGTERM: {_tail(logpath, 3)}"
        self.live.clear()
        return notes


def run_one(name: str, servers: LiveServers, rep: int, size: int, connections: int, args,
            bins, cpus) -> RunResult:
    client_cpu, server_cpu = cpus
    res = RunResult(name, rep, size, connections, ok=False)
    try:
        proc, port, logpath, notes = servers.get(name)
        res.notes += notes
        _warm_up(port, size)
        argv, preexec = pin_argv(client_cpu, [
            bins["client"], HOST, str(port), str(connections), str(size),
            str(args.warmup), str(args.duration), str(proc.pid)])
        cproc = _spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
        try:
            out, err = cproc.communicate(timeout=args.warmup + args.duration + 60)
        except subprocess.TimeoutExpired:
            _stop(cproc, grace=1)
            raise RuntimeError("load client timed out")
        _CHILDREN.remove(cproc)
        if cproc.returncode != 0:
            raise RuntimeError(f"load client failed (exit {cproc.returncode}): {err.strip()}")
        res.client = json.loads(out)
        if not res.client["server_cpu"]["ok"]:
            raise RuntimeError("could not read the server's /proc/PID/stat")
        if proc.poll() is not None:
            raise RuntimeError(f"server exited during the run (exit {proc.returncode}): "
                               f"{_tail(logpath)}")
        res.derived = derive(res.client, client_cpu, server_cpu)
        e = res.client["errors"]
        if e["total"]:
            res.notes.append(f"echo errors: {e}")
        if res.client["alive_connections"] != connections:
            res.notes.append(f"only {res.client['alive_connections']} of {connections} "
                             "connections alive at the end")
        res.ok = e["total"] == 0 and res.client["messages"] > 0
        if not res.ok:
            res.error = f"echo errors {e}, messages {res.client['messages']}"
    except Exception as exc:  # a failed run is reported, the benchmark goes on
        res.error = str(exc)
    return res


# --------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------

METRICS = ("msgs_per_s", "p50_us", "p99_us", "user_us_per_msg", "sys_us_per_msg",
           "cpu_us_per_msg", "msgs_per_cpu_s", "server_cpu_pct", "client_cpu_pct",
           "other_on_server_core_pct", "other_on_client_core_pct")


def summarize(runs: list[RunResult], names) -> dict:
    out = {}
    for name in names:
        ok = [r for r in runs if r.server == name and r.ok]
        if not ok:
            continue
        s = {"runs": len(ok)}
        for m in METRICS:
            vals = [r.derived[m] for r in ok if m in r.derived]
            if vals:
                s[m] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                        "values": vals}
        s["errors"] = sum(r.derived["errors"] for r in ok)
        s["discarded"] = sum(r.retries for r in runs if r.server == name)
        out[name] = s
    return out


def ratios(summary: dict, runs: list[RunResult]) -> list[dict]:
    out = []
    items = [(t[0], t[1], t[2], t[3], t[4], t[5]) for t in TARGETS] + \
            [(t[0], t[1], t[2], t[3], None, None) for t in EXTRA_RATIOS]
    for label, num, den, metric, target, op in items:
        row = {"label": label, "numerator": num, "denominator": den, "metric": metric,
               "target": target, "op": op}
        if num not in summary or den not in summary:
            if target is None:
                continue
            missing = [s for s in (num, den) if s not in summary]
            row.update(ratio=None, verdict=f"n/a (no results for {', '.join(missing)})")
            out.append(row)
            continue
        if not summary[den][metric]["median"] > 0:  # e.g. no user-time tick in a short run
            if target is not None:
                row.update(ratio=None, verdict=f"n/a ({den}'s {metric} is 0)")
                out.append(row)
            continue
        r = summary[num][metric]["median"] / summary[den][metric]["median"]
        # per-repetition paired ratios (runs of the same repetition are
        # seconds apart): their range shows the noise
        paired = []
        for rep in sorted({x.rep for x in runs}):
            a = [x for x in runs if x.rep == rep and x.server == num and x.ok]
            b = [x for x in runs if x.rep == rep and x.server == den and x.ok]
            if a and b and b[0].derived[metric] > 0:
                paired.append(a[0].derived[metric] / b[0].derived[metric])
        row.update(ratio=r, paired=paired)
        if target is not None:
            met = r <= target if op == "<=" else r >= target
            verdict = "met" if met else "MISSED"
            if paired and (min(paired) <= target <= max(paired)):
                verdict += " (repetitions straddle the target)"
            row["verdict"] = verdict
            row["met"] = met
        out.append(row)
    return out


def _fmt(v, nd=2):
    if v is None or v != v:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def print_table(summary: dict, names, out) -> None:
    cols = (("server", None, 26), ("msgs/s", "msgs_per_s", 9), ("p50 us", "p50_us", 8),
            ("p99 us", "p99_us", 8), ("user us/msg", "user_us_per_msg", 11),
            ("sys us/msg", "sys_us_per_msg", 10), ("cpu us/msg", "cpu_us_per_msg", 10),
            ("msgs/cpu-s", "msgs_per_cpu_s", 10), ("srv cpu%", "server_cpu_pct", 8),
            ("cli cpu%", "client_cpu_pct", 8))
    head = "  ".join(f"{c[0]:<{c[2]}}" if i == 0 else f"{c[0]:>{c[2]}}" for i, c in enumerate(cols))
    print(head, file=out)
    print("-" * len(head), file=out)
    for name in names:
        if name not in summary:
            continue
        s = summary[name]
        cells = [f"{name:<26}"]
        for _, m, w in cols[1:]:
            nd = 1 if m in ("server_cpu_pct", "client_cpu_pct", "p50_us", "p99_us") else 2
            cells.append(f"{_fmt(s[m]['median'], nd):>{w}}")
        print("  ".join(cells), file=out)


def print_spread(summary: dict, names, out) -> None:
    print("spread over repetitions (min - max):", file=out)
    for name in names:
        if name not in summary:
            continue
        s = summary[name]

        def mm(m, nd=2):
            if m not in s:
                return "-"
            return f"{_fmt(s[m]['min'], nd)} - {_fmt(s[m]['max'], nd)}"
        other = ""
        if "other_on_server_core_pct" in s:
            other = (f"  other load on server core {s['other_on_server_core_pct']['max']:.1f}% max,"
                     f" on client core {s.get('other_on_client_core_pct', {}).get('max', 0):.1f}% max")
        if s.get("discarded"):
            other += f"  ({s['discarded']} disturbed run(s) discarded and re-run)"
        print(f"  {name:<26} n={s['runs']}  msgs/s {mm('msgs_per_s')}  user us/msg "
              f"{mm('user_us_per_msg')}  cpu us/msg {mm('cpu_us_per_msg')}  p99 us "
              f"{mm('p99_us', 1)}{other}", file=out)


def sanity_checks(summary: dict, connections: int) -> list[str]:
    warn = []
    py = {k: v for k, v in summary.items() if k != "c-epoll"}
    if "c-epoll" in summary and py:
        c_user = summary["c-epoll"]["user_us_per_msg"]["median"]
        lo = min(v["user_us_per_msg"]["median"] for v in py.values())
        if not c_user * 3 < lo:
            warn.append(f"c-epoll user CPU/msg {c_user:.2f} us is not far below the Python "
                        f"servers' (lowest {lo:.2f} us): the measurement is suspect")
    for name, s in summary.items():
        if s.get("errors"):
            warn.append(f"{name}: {s['errors']} echo errors")
        for key, where in (("other_on_server_core_pct", "server"),
                           ("other_on_client_core_pct", "client")):
            if key in s and s[key]["max"] > BUSY_PCT:
                warn.append(f"{name}: up to {s[key]['max']:.0f}% of the {where} core went to "
                            "other work during a run (shared machine?)")
        if name != "c-epoll" and connections >= 8:
            if s["client_cpu_pct"]["median"] > 90 and s["server_cpu_pct"]["median"] < 90:
                warn.append(f"{name}: the load client was the bottleneck "
                            f"(client {s['client_cpu_pct']['median']:.0f}% CPU, server "
                            f"{s['server_cpu_pct']['median']:.0f}%)")
    return warn


def _read_proc_stat() -> dict:
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
                    out[int(parts[0][3:])] = [int(x) for x in parts[1:9]]
    except (OSError, ValueError):
        pass
    return out


BUSY_PCT = 5.0  # % of a core used by other work that makes a run suspect


def wait_idle(cpus, limit: float, sample: float = 0.25):
    """Wait (up to ``limit`` s) until the two cores are idle; None when they
    are, else the last busy figures."""
    if limit <= 0:
        return None
    deadline = time.monotonic() + limit
    while True:
        busy = _busy_before(sample)
        hot = {c: v for c, v in busy.items() if c in cpus and v > BUSY_PCT * 2}
        if not hot:
            return None
        if time.monotonic() >= deadline:
            return hot
        time.sleep(0.5)


def _busy_before(seconds: float) -> dict:
    """% busy of each CPU over a short idle look before the benchmark."""
    a = _read_proc_stat()
    time.sleep(seconds)
    b = _read_proc_stat()
    out = {}
    for cpu in a:
        if cpu in b:
            d = [y - x for x, y in zip(a[cpu], b[cpu])]
            total = sum(d)
            if total > 0:
                out[cpu] = round(100 * _cpu_busy(d) / total, 1)
    return out


def echo_machine_info(bins, cpus) -> dict:
    info = machine_info()
    info.update(gcc=bins.get("gcc"), uvloop=uvloop_version(), client_cpu=cpus[0],
                server_cpu=cpus[1])
    return info


# --------------------------------------------------------------------------
# The whole measurement (also called by ``python -m benchmarks``)
# --------------------------------------------------------------------------

def cells_of(args) -> list[dict]:
    """Every (size, connections) cell with its repetitions; the headline cell
    (1 KiB x the most connections, when measured) gets ``--headline-repeat``."""
    hs = 1024 if 1024 in args.sizes else args.sizes[0]
    hc = max(args.connections)
    out = []
    for size in args.sizes:
        for conns in args.connections:
            head = (size, conns) == (hs, hc)
            out.append({"size": size, "connections": conns, "headline": head,
                        "repeat": max(args.repeat, args.headline_repeat or 0) if head
                        else args.repeat})
    return out


def measure(args, log) -> dict:
    """Start the servers, run every cell x server x repetition, stop them."""
    cpus = bench_cpus()
    # the harness mostly sleeps; keep it off the server's core
    os.sched_setaffinity(0, {cpus[0]})
    idle_check = _busy_before(0.5)
    logdir = tempfile.mkdtemp(prefix="reactor-echo-logs-")
    servers = None
    try:
        bins = build_binaries(log)
        avail = check_available(args.server_list, bins)
        names = [n for n in args.server_list if avail[n] is None]
        skipped = {n: avail[n] for n in args.server_list if avail[n] is not None}
        for n, why in skipped.items():
            log(f"[echo] skipping {n}: {why}")
        info = echo_machine_info(bins, cpus)
        info["cpu_busy_pct_before"] = idle_check
        busy = {c: v for c, v in idle_check.items() if c in cpus and v > 10}
        if busy:
            log(f"[echo] WARNING: the machine is busy before the benchmark: {busy} (% per cpu); "
                "other work on the two cores skews the figures")
        if cpus[0] == cpus[1]:
            log("[echo] WARNING: only one CPU available: client and server share it")
        cells = cells_of(args)
        total = sum(c["repeat"] for c in cells) * len(names)
        log(f"[echo] {len(names)} servers x {len(cells)} cells, {total} runs of "
            f"{args.warmup:g} + {args.duration:g} s, about "
            f"{total * (args.warmup + args.duration + 0.4):.0f} s")
        servers = LiveServers(names, bins, cpus[1], logdir, log)
        for n, why in servers.failed.items():
            log(f"[echo] {n} did not start: {why}")

        runs: list[RunResult] = []
        t0 = time.monotonic()
        # seconds that waiting for idle cores and re-running disturbed runs may add
        extra_left = args.max_extra if args.max_extra is not None else float("inf")
        for rep in range(max(c["repeat"] for c in cells)):
            for ci, cell in enumerate(cells):
                if rep >= cell["repeat"]:
                    continue
                k = (rep + ci) % len(names) if names else 0
                for name in names[k:] + names[:k]:  # rotate: no server always first
                    size, conns = cell["size"], cell["connections"]
                    for attempt in range(args.retry_busy + 1):
                        t_extra = time.monotonic()
                        waited = wait_idle(cpus, min(args.wait_idle, extra_left),
                                           args.idle_sample)
                        extra_left -= time.monotonic() - t_extra
                        r = run_one(name, servers, rep, size, conns, args, bins, cpus)
                        if waited is not None:
                            r.notes.append(f"machine still busy after waiting "
                                           f"{args.wait_idle:g} s ({waited})")
                        other = max(r.derived.get("other_on_server_core_pct", 0),
                                    r.derived.get("other_on_client_core_pct", 0))
                        if not r.ok or other <= BUSY_PCT or attempt == args.retry_busy \
                                or extra_left <= 0:
                            break
                        log(f"[echo] {name} discarded: {other:.0f}% of a core went to other "
                            "work during the run; running it again")
                        extra_left -= args.warmup + args.duration
                        r.retries = attempt + 1
                    runs.append(r)
                    tag = (f"[echo {len(runs)}/{total} {size}B x{conns} rep {rep + 1}/"
                           f"{cell['repeat']} {time.monotonic() - t0:.0f}s]")
                    if r.ok:
                        d = r.derived
                        log(f"{tag} {name:<25} {d['msgs_per_s']:>9,.0f} msg/s  user "
                            f"{d['user_us_per_msg']:.2f} sys {d['sys_us_per_msg']:.2f} us/msg"
                            f"  p99 {d['p99_us']:.0f} us" +
                            (f"  ({'; '.join(r.notes)})" if r.notes else ""))
                    else:
                        log(f"{tag} {name:<25} FAILED: {r.error}")
        exit_notes = servers.stop_all()
        for cell in cells:
            cruns = [r for r in runs if (r.size, r.connections) == (cell["size"],
                                                                    cell["connections"])]
            cell["summary"] = summarize(cruns, names)
            cell["ratios"] = ratios(cell["summary"], cruns)
            cell["warnings"] = sanity_checks(cell["summary"], cell["connections"])
        return {
            "meta": info,
            "config": {"sizes": args.sizes, "connections": args.connections,
                       "repeat": args.repeat, "headline_repeat": args.headline_repeat,
                       "duration": args.duration, "warmup": args.warmup,
                       "wait_idle": args.wait_idle, "retry_busy": args.retry_busy,
                       "max_extra": args.max_extra,
                       "quick": args.quick},
            "servers": {n: {"description": SERVERS[n].description,
                            "command": f"taskset -c {cpus[1]} " + " ".join(
                                SERVERS[n].argv("PORT", bins)).replace(ROOT + os.sep, "")}
                        for n in names},
            "skipped": skipped,
            "server_exit_notes": exit_notes,
            "runs": [{"server": r.server, "size": r.size, "connections": r.connections,
                      "repetition": r.rep + 1, "ok": r.ok, "discarded_busy_runs": r.retries,
                      "error": r.error, "notes": r.notes, "derived": r.derived,
                      "client": r.client} for r in runs],
            "cells": cells,
        }
    finally:
        if servers is not None:
            servers.stop_all()
        _kill_all_children()
        if args.keep_logs:
            log(f"server logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.echo_bench",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="servers: " + ", ".join(SERVERS) +
                                       f"\ndefault: {','.join(DEFAULT_SERVERS)}")
    p.add_argument("--connections", default=None,
                   help="concurrent connections, or a comma list (100)")
    p.add_argument("--size", default="1024",
                   help="message size in bytes, or a comma list (1024)")
    p.add_argument("--duration", type=float, default=None, help="measured seconds per run (10)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds of load before the measured window (1)")
    p.add_argument("--repeat", type=int, default=None, help="runs per server and cell (3)")
    p.add_argument("--headline-repeat", type=int, default=None,
                   help="runs per server for the 1 KiB x most-connections cell (= --repeat)")
    p.add_argument("--servers", default=None, help="comma-separated server names")
    p.add_argument("--json", metavar="PATH", help="write all results as JSON")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2 connections, 0.5 s, 1 repeat, 2 servers")
    p.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--wait-idle", type=float, default=None, metavar="S",
                   help="before each run wait up to S seconds for both cores to be idle "
                        "(30; 0 in --quick)")
    p.add_argument("--idle-sample", type=float, default=0.25, metavar="S",
                   help="length of one look at the cores' load before a run (0.25)")
    p.add_argument("--retry-busy", type=int, default=None, metavar="N",
                   help="run again (up to N times) a run during which other work took more "
                        f"than {BUSY_PCT:g}%% of either core (2; 0 in --quick)")
    p.add_argument("--max-extra", type=float, default=None, metavar="S",
                   help="at most S seconds in all spent waiting for idle cores and re-running "
                        "disturbed runs (no limit); disturbed runs are kept and marked after")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the servers' stderr logs (their directory is printed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    quick = args.quick
    args.connections = _int_list(args.connections or ("2" if quick else "100"))
    args.sizes = _int_list(args.size)
    if args.duration is None:
        args.duration = 0.5 if quick else 10.0
    if args.warmup is None:
        args.warmup = 0.2 if quick else 1.0
    if args.wait_idle is None:
        args.wait_idle = 0.0 if quick else 30.0
    if args.retry_busy is None:
        args.retry_busy = 0 if quick else 2
    if args.repeat is None:
        args.repeat = 1 if quick else 3
    if not args.connections or not args.sizes or min(args.connections + args.sizes) < 1 \
            or args.duration <= 0 or args.warmup < 0 or args.repeat < 1:
        p.error("--connections, --size, --repeat must be >= 1, --duration > 0, --warmup >= 0")
    if args.servers:
        names = [s.strip() for s in args.servers.split(",") if s.strip()]
        bad = [s for s in names if s not in SERVERS]
        if bad:
            p.error(f"unknown server(s) {', '.join(bad)}; known: {', '.join(SERVERS)}")
        args.server_list = list(dict.fromkeys(names))
    elif quick:
        args.server_list = ["reactor", "chapter-selectors"]
    else:
        args.server_list = list(DEFAULT_SERVERS)
    return args


def print_report(doc: dict, out) -> None:
    info, cfg = doc["meta"], doc["config"]
    print("\n== reactor echo benchmark ==", file=out)
    print(f"command: {info['command']}", file=out)
    print(f"machine: nproc {info['nproc']}, {info['cpu_model']}, Linux {info['kernel']}, "
          f"Python {info['python']}, {info['gcc']}, uvloop {info['uvloop'] or '-'}, "
          f"reactor {info['git']}, loadavg at start {info['loadavg_start']}, "
          f"cpu busy % before start {info['cpu_busy_pct_before']}", file=out)
    print(f"load: ping-pong, {cfg['warmup']:g} s warm-up + {cfg['duration']:g} s measured per "
          f"run, servers interleaved; client on cpu {info['client_cpu']}, servers on cpu "
          f"{info['server_cpu']}; figures are medians", file=out)
    print("\nservers (PORT = a free port):", file=out)
    for n, s in doc["servers"].items():
        print(f"  {n:<26} {s['command']}", file=out)
    for cell in doc["cells"]:
        print(f"\n-- {cell['connections']} connections x {cell['size']}-byte messages, "
              f"{cell['repeat']} repetition(s) --", file=out)
        names = list(doc["servers"])
        print_table(cell["summary"], names, out)
        print("", file=out)
        print_spread(cell["summary"], names, out)
        rat = cell["ratios"]
        if len(doc["cells"]) > 1 and not cell["headline"]:
            continue
        print("\nratios (ratio of medians; per-repetition paired ratios in brackets)" +
              (" -- QUICK RUN: a smoke test, these figures mean nothing" if cfg["quick"] else "")
              + ":", file=out)
        for row in rat:
            if row.get("ratio") is None:
                print(f"  {row['label']}: {row['verdict']} (target {row['op']} {row['target']})",
                      file=out)
                continue
            paired = ", ".join(f"{p:.2f}" for p in row["paired"])
            tgt = f"  target {row['op']} {row['target']}: {row['verdict']}" \
                if row["target"] is not None else ""
            print(f"  {row['label']}: {row['ratio']:.2f}x [{paired}]{tgt}", file=out)
    if doc["skipped"]:
        print("\nskipped:", file=out)
        for n, why in doc["skipped"].items():
            print(f"  {n}: {why}", file=out)
    failed = [r for r in doc["runs"] if not r["ok"]]
    if failed:
        print("\nfailed runs:", file=out)
        for r in failed:
            print(f"  {r['server']} ({r['connections']} x {r['size']} B, repetition "
                  f"{r['repetition']}): {r['error']}", file=out)
    print("\nnotes: user/sys split comes from the kernel's tick-sampled accounting "
          "(/proc/PID/stat), a few % noise per run; total CPU (cpu us/msg, msgs/cpu-s) is "
          "exact (schedstat). 'srv/cli cpu%' = share of one core used by the server / the "
          "load client in the window.", file=out)
    notes = sorted({f"{r['server']}: {n}" for r in doc["runs"] for n in r["notes"]})
    notes += [f"{n}: {why}" for n, why in doc["server_exit_notes"].items()]
    for w in [w for c in doc["cells"] for w in c["warnings"]] + notes:
        print(f"WARNING: {w}", file=out)


def main(argv=None) -> int:
    args = parse_args(argv)
    say = (lambda msg: None) if args.quiet else log
    atexit.register(_kill_all_children)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    doc = measure(args, say)
    print_report(doc, sys.stdout)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"\nJSON written to {args.json}")
    if any(not r["ok"] for r in doc["runs"]) or doc["server_exit_notes"]:
        return 2
    rat = [r for c in doc["cells"] for r in c["ratios"] if r["target"] is not None]
    if args.check_targets and any(not r.get("met", False) for r in rat):
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
