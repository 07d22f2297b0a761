"""``python -m reactor demo``: reactor's selectors next to the stdlib's, on
this machine.

Each comparison warms both up once, then runs ROUNDS rounds alternating
which goes first (so neither always gets the warmer cache or the quieter
moment) and prints the medians.  The benchmarks (python -m benchmarks, in a
checkout or the sdist) measure properly.
"""

import os
import resource
import selectors
import socket
import statistics
import time

import reactor

BACKENDS = ("EpollSelector", "PollSelector", "SelectSelector")
ROUNDS = 5


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


def compare(measure, name, rounds=ROUNDS):
    """(stdlib, reactor): medians of measure(cls) over `rounds` rounds in
    alternating order, after one warm-up run of each."""
    classes = [getattr(selectors, name), getattr(reactor, name)]
    for cls in classes:
        measure(cls)
    results = ([], [])
    for index in range(rounds):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            results[which].append(measure(classes[which]))
    return statistics.median(results[0]), statistics.median(results[1])


def high_fd_select():
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


def main():
    print("reactor demo: the stdlib's selectors and reactor's, side by side")
    print(f"(medians of {ROUNDS} rounds in alternating order, after a warm-up)\n")
    print("1. Ping-pong over a socketpair, time per round trip (lower is better)")
    for name in BACKENDS:
        std, ours = compare(_ping_pong, name)
        print(f"   {name:15} stdlib {std * 1e6:7.2f} us   reactor {ours * 1e6:7.2f} us")
    print(
        "\n2. select(0.0002) with nothing ready: median wait\n"
        "   (the stdlib's epoll and poll round it up to 1 ms)"
    )
    for name in BACKENDS:
        std, ours = compare(_short_timeout, name)
        print(f"   {name:15} stdlib {std * 1e3:6.3f} ms   reactor {ours * 1e3:6.3f} ms")
    print("\n3. SelectSelector watching fd 1050 (FD_SETSIZE is 1024)")
    print(f"   {high_fd_select()}")
    print(
        "\nFigures from a shared machine; the benchmarks (python -m benchmarks, in a "
        "checkout or the sdist) measure properly, and "
        "`python -m reactor models` measures the five IO models."
    )
