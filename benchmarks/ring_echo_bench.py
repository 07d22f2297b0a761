"""The io_uring echo server next to the epoll one, on echo_bench's harness.

Run from the repository root::

    python -m benchmarks.ring_echo_bench                          # 1 KiB x 1,10,100,1000 conns
    python -m benchmarks.ring_echo_bench --connections 100 --repeat 5 --json ring.json
    python -m benchmarks.ring_echo_bench --quick                  # smoke run

Same compiled C client, pinning (client on the first CPU, servers on the
second), warm-up, interleaving and medians as ``benchmarks.echo_bench``
(see benchmarks/echo/README.md), with two more servers:

* ``reactor-uring``: ``python -m reactor._ring_echo --raw`` (reactor/_ring_echo.py):
  multishot accept, one recv per connection whose buffer the kernel picks
  from a shared pool, the send straight from that buffer;
* ``reactor-uring-per-recv``: the same with a buffer of its own per recv
  (``--no-provided-buffers``);

against ``reactor`` (``python -m reactor echo --raw``: the epoll Reactor and
TCPServer) and ``c-epoll`` (the C floor).  Any other echo_bench option
passes through.  Until the CLI grows ``echo --backend uring`` this module
adds the servers to echo_bench's table itself.
"""

from __future__ import annotations

import sys

from benchmarks import echo_bench
from benchmarks._common import PY, run_cli

SERVERS = ("reactor", "reactor-uring", "reactor-uring-per-recv", "c-epoll")


def _ring_echo(*extra):
    return lambda port, bins: [PY, "-m", "reactor._ring_echo", "--raw", "--host",
                               echo_bench.HOST, "--port", str(port), *extra]


def install() -> None:
    """Add the io_uring servers and their ratios to echo_bench."""
    echo_bench.SERVERS["reactor-uring"] = echo_bench.ServerSpec(
        "reactor-uring", "python -m reactor._ring_echo --raw (io_uring, provided buffers)",
        "reactor", _ring_echo())
    echo_bench.SERVERS["reactor-uring-per-recv"] = echo_bench.ServerSpec(
        "reactor-uring-per-recv", "python -m reactor._ring_echo --raw --no-provided-buffers",
        "reactor", _ring_echo("--no-provided-buffers"))
    echo_bench.EXTRA_RATIOS = echo_bench.EXTRA_RATIOS + tuple(
        (f"{server} {label} vs reactor (epoll)", server, "reactor", metric)
        for server in ("reactor-uring", "reactor-uring-per-recv")
        for label, metric in (("user-CPU/msg", "user_us_per_msg"),
                              ("total CPU/msg", "cpu_us_per_msg"),
                              ("msgs/s", "msgs_per_s")))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    install()
    if not any(a == "--servers" or a.startswith("--servers=") for a in argv):
        argv += ["--servers", ",".join(SERVERS)]
    if not any(a == "--connections" or a.startswith("--connections=") for a in argv) \
            and "--quick" not in argv:
        argv += ["--connections", "1,10,100,1000"]
    return echo_bench.main(argv)


if __name__ == "__main__":
    run_cli(main)
