"""Soak: ``python -m reactor echo`` under steady load for a minute, with its
memory watched.

    python -m benchmarks.soak                     # 60 s, 1,000 connections, 1 KiB
    python -m benchmarks.soak --quick             # 3 s, 50 connections (smoke)
    python -m benchmarks.soak --json soak.json

The compiled load client (benchmarks/echo/client.c, pinned to the first
CPU) keeps every connection in ping-pong and compares every echoed byte with
what it sent; the server (pinned to the second CPU) is sampled every 0.5 s
for its resident set (VmRSS), and its peak (VmHWM) is read at the end.

Passes (exit 0) when the client saw no error at all (no mismatched byte, no
closed or reset connection) and memory is flat: after the first tenth of
the run (start-up, buffers reaching their working size), resident memory
grows by less than max(2 MiB, 5%) to the end and its fitted slope is under
1 MiB per minute.  Exit 1 otherwise, 2 when the run could not be made.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from ._common import (BENCH_DIR, PY, ROOT, bench_cpus, compile_c, describe, log, machine_info,
                      pin_argv, raise_nofile, run_cli)

LISTENING = re.compile(rb"listening on ([0-9.]+):(\d+)")
SAMPLE_EVERY = 0.5
FLAT_GROWTH_KIB = 2048
FLAT_GROWTH_FRACTION = 0.05
FLAT_SLOPE_KIB_PER_MIN = 1024


def _status_kib(pid, field):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _slope_per_min(samples):
    """Least-squares slope of (t, kib) samples, in KiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mk = sum(k for _, k in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60 * sum((t - mt) * (k - mk) for t, k in samples) / var


def _start_server(args, cpu, log_file):
    argv, preexec = pin_argv(cpu, [PY, "-m", "reactor", "echo", "--raw", "--port", "0",
                                   "--backend", args.backend])
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log_file, preexec_fn=preexec)
    deadline = time.monotonic() + 15
    while True:
        with open(log_file.name, "rb") as fh:
            match = LISTENING.search(fh.read())
        if match:
            return proc, match.group(1).decode(), int(match.group(2))
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the echo server did not start")
        time.sleep(0.02)


def soak(args):
    client_cpu, server_cpu = bench_cpus()
    raise_nofile(args.connections + 64)
    client_bin, gcc = compile_c(os.path.join(BENCH_DIR, "echo", "client.c"), "echo-client")
    result = {"meta": {**machine_info(), "gcc": gcc,
                       "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:])},
              "config": {"duration_s": args.duration, "connections": args.connections,
                         "size": args.size, "backend": args.backend,
                         "server_cpu": server_cpu, "client_cpu": client_cpu}}
    with tempfile.NamedTemporaryFile(prefix="reactor-soak-", suffix=".log") as server_log:
        server, host, port = _start_server(args, server_cpu, server_log)
        try:
            argv, preexec = pin_argv(client_cpu, [client_bin, host, str(port),
                                                  str(args.connections), str(args.size), "0",
                                                  str(args.duration), str(server.pid)])
            log(f"soak: {args.connections} connections x {args.size} B for {args.duration:g} s "
                f"against reactor echo (pid {server.pid}, backend {args.backend})")
            client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, preexec_fn=preexec)
            start = time.monotonic()
            samples = []
            next_report = start + 10
            while client.poll() is None:
                now = time.monotonic()
                samples.append((now - start, _status_kib(server.pid, "VmRSS")))
                if now >= next_report:
                    log(f"  {now - start:5.1f} s  server RSS {samples[-1][1] / 1024:.1f} MiB")
                    next_report += 10
                time.sleep(SAMPLE_EVERY)
            out, err = client.communicate()
            peak = _status_kib(server.pid, "VmHWM")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                server_status = server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server_status = server.wait()
        with open(server_log.name, "rb") as fh:
            server_stderr = fh.read().decode(errors="replace")
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed ({client.returncode}): {err.strip()}")
    measured = json.loads(out)
    steady_from = args.duration / 10
    steady = [(t, k) for t, k in samples if t >= steady_from] or samples
    baseline, end = steady[0][1], steady[-1][1]
    growth = end - baseline
    slope = _slope_per_min(steady)
    allowed = max(FLAT_GROWTH_KIB, FLAT_GROWTH_FRACTION * baseline)
    flat = growth < allowed and slope < FLAT_SLOPE_KIB_PER_MIN
    errors = measured["errors"]
    result["client"] = measured
    result["memory"] = {
        "rss_kib_samples": [[round(t, 2), k] for t, k in samples],
        "rss_kib_at_steady_start": baseline, "rss_kib_at_end": end,
        "peak_rss_kib": peak, "growth_kib": growth, "slope_kib_per_min": round(slope, 1),
        "allowed_growth_kib": allowed, "flat": flat,
        "rss_kib": describe([k for _, k in steady]),
    }
    result["server"] = {"exit_status": server_status,
                        "traceback_in_log": "Traceback" in server_stderr}
    result["passed"] = (errors["total"] == 0 and flat and server_status == 0
                        and "Traceback" not in server_stderr and measured["messages"] > 0)
    return result


def _summary(r):
    m, c = r["memory"], r["client"]
    lines = [
        f"soak: {r['config']['connections']} connections x {r['config']['size']} B, "
        f"{c['duration_s']:.1f} s, backend {r['config']['backend']}",
        f"  messages      {c['messages']:,} ({c['msgs_per_s']:,.0f}/s), "
        f"latency p50 {c['latency_us']['p50']:.0f} us, p99 {c['latency_us']['p99']:.0f} us",
        f"  byte errors   {c['errors']['total']} (mismatch {c['errors']['mismatch']}, closed "
        f"{c['errors']['closed']}, overrun {c['errors']['overrun']}, io {c['errors']['io']})",
        f"  server RSS    {m['rss_kib_at_steady_start'] / 1024:.1f} MiB after the first tenth, "
        f"{m['rss_kib_at_end'] / 1024:.1f} MiB at the end, peak {m['peak_rss_kib'] / 1024:.1f} MiB",
        f"  growth        {m['growth_kib']:+d} KiB (allowed < {m['allowed_growth_kib']:.0f}), slope "
        f"{m['slope_kib_per_min']:+.1f} KiB/min: {'flat' if m['flat'] else 'NOT FLAT'}",
        f"  server        exit status {r['server']['exit_status']}, "
        f"{'a traceback in its log' if r['server']['traceback_in_log'] else 'no traceback'}",
        f"  {'PASSED' if r['passed'] else 'FAILED'}",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--connections", type=int, default=1000, help="concurrent connections (1000)")
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes (1024)")
    parser.add_argument("--backend", choices=["epoll", "poll", "select"], default="epoll")
    parser.add_argument("--quick", action="store_true", help="3 s, 50 connections: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="write the results, RSS samples included")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.connections = 3.0, 50
    try:
        result = soak(args)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    print(_summary(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    run_cli(main)
