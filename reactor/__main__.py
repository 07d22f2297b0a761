"""python -m reactor echo | demo

echo: the IO-multiplexing chapter's echo server on the Reactor.
demo: reactor's selectors next to the stdlib's, measured on this machine.
"""

import argparse
import os
import resource
import selectors
import socket
import statistics
import sys
import time

import reactor
from reactor import _echo

BACKENDS = ("EpollSelector", "PollSelector", "SelectSelector")


def _ping_pong(cls, rounds=2000):
    """Round trips over a socketpair driven by cls's select(); seconds each."""
    a, b = socket.socketpair()
    with a, b, cls() as sel:
        sel.register(a, selectors.EVENT_READ, "a")
        sel.register(b, selectors.EVENT_READ, "b")
        start = time.perf_counter()
        b.send(b"x")
        for _ in range(rounds):
            for key, _mask in sel.select():
                data = key.fileobj.recv(16)
                (b if key.data == "a" else a).send(data)
        return (time.perf_counter() - start) / rounds


def _short_timeout(cls, timeout=0.0002, rounds=50):
    with cls() as sel:
        waits = []
        for _ in range(rounds):
            start = time.perf_counter()
            sel.select(timeout)
            waits.append(time.perf_counter() - start)
        return statistics.median(waits)


def _high_fd_select():
    """Watch an fd numbered >= 1024 with SelectSelector, as select() can."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        return f"skipped: RLIMIT_NOFILE hard limit {hard} < 1100"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    a, b = socket.socketpair()
    high = os.dup2(a.fileno(), 1050)
    try:
        b.send(b"ping")
        with reactor.SelectSelector() as sel:
            sel.register(high, reactor.EVENT_READ)
            ours = [(key.fd, mask) for key, mask in sel.select(0)]
        try:
            with selectors.SelectSelector() as sel:
                sel.register(high, selectors.EVENT_READ)
                sel.select(0)
            stdlib = "works"
        except ValueError as exc:
            stdlib = f"ValueError: {exc}"
        return f"reactor: {ours}; stdlib: {stdlib}"
    finally:
        os.close(high)
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def demo():
    print("reactor demo: the stdlib's selectors and reactor's, side by side\n")
    print("1. Ping-pong over a socketpair, time per round trip (lower is better)")
    for name in BACKENDS:
        std = _ping_pong(getattr(selectors, name))
        ours = _ping_pong(getattr(reactor, name))
        print(f"   {name:15} stdlib {std * 1e6:7.2f} us   reactor {ours * 1e6:7.2f} us")
    print("\n2. select(0.0002) with nothing ready: median wait\n"
          "   (the stdlib's epoll and poll round it up to 1 ms)")
    for name in BACKENDS:
        std = _short_timeout(getattr(selectors, name))
        ours = _short_timeout(getattr(reactor, name))
        print(f"   {name:15} stdlib {std * 1e3:6.3f} ms   reactor {ours * 1e3:6.3f} ms")
    print("\n3. SelectSelector watching fd 1050 (FD_SETSIZE is 1024)")
    print(f"   {_high_fd_select()}")
    print("\nFigures from one quick run on a shared machine; benchmarks/ measures properly.")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, "reactor echo: <what is wrong>", exit 2."""

    def error(self, message):
        name = self.prog.replace("python -m ", "")
        self.exit(2, f"{name}: {message} (see {self.prog} --help)\n")


def main(argv=None):
    parser = _Parser(prog="python -m reactor", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    echo_parser = sub.add_parser("echo", help="the chapter's echo server on the Reactor",
                                 description=_echo.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _echo.add_arguments(echo_parser)
    sub.add_parser("demo", help="show reactor's selectors next to the stdlib's")
    args = parser.parse_args(argv)
    if args.command == "echo":
        return _echo.main(args)
    demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
