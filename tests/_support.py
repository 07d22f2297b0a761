"""Differential-testing helpers: run the same call on reactor's selector and
on the stdlib selector of the same backend, in lockstep, and compare.

Both selectors watch the *same* file descriptors, so anything a test does to
the files between calls (write data, close a peer, close the fd) is seen by
both alike; only the selectors themselves are separate instances.
"""

import errno as errno_mod
import selectors
import socket
from dataclasses import dataclass

import reactor
from reactor import EVENT_READ, EVENT_WRITE

__all__ = [
    "Backend",
    "BACKENDS",
    "Diff",
    "Outcome",
    "outcome",
    "EVENT_READ",
    "EVENT_WRITE",
    "drain",
    "kernel_interest",
    "fill",
    "snapshot_map",
    "ready_set",
]


@dataclass(frozen=True)
class Backend:
    name: str
    ours: type
    stdlib: type

    def __str__(self):
        return self.name


BACKENDS = [
    Backend("epoll", reactor.EpollSelector, selectors.EpollSelector),
    Backend("poll", reactor.PollSelector, selectors.PollSelector),
    Backend("select", reactor.SelectSelector, selectors.SelectSelector),
]


class Outcome:
    """What a call did: its (normalised) return value or its exception."""

    def __init__(self, value=None, exc=None):
        self.value = value
        self.exc = exc

    @property
    def raised(self):
        return self.exc is not None

    def signature(self):
        if self.exc is not None:
            return ("raise", type(self.exc), getattr(self.exc, "errno", None))
        return ("return", normalise(self.value))

    def __repr__(self):
        if self.exc is not None:
            return f"raise {type(self.exc).__name__}({self.exc})"
        return f"return {self.value!r}"


def outcome(fn, *args, **kwargs):
    try:
        return Outcome(value=fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return Outcome(exc=exc)


def normalise(value):
    """Turn a selector result into something comparable across instances."""
    if isinstance(value, selectors.SelectorKey):
        # Compare all four fields, and the type of `events` too: the stdlib
        # stores the object passed by the caller (True stays True).
        return ("key", value, type(value.events))
    if isinstance(value, list) and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], selectors.SelectorKey)
        for item in value
    ):
        # select(): order is unspecified; compare as a set of (fd, mask) and
        # each reported key in full.
        return ("select", sorted(value, key=lambda item: item[0].fd))
    return value


def snapshot_map(sel):
    m = sel.get_map()
    if m is None:
        return None
    return {fd: m[fd] for fd in m}


def ready_set(results):
    return {(key.fd, mask) for key, mask in results}


class Diff:
    """Lockstep differential driver for one backend.

    ``d.call("register", fobj, EVENT_READ)`` calls the method on the stdlib
    selector, then on ours, asserts that both returned equal values or raised
    the same exception type (and errno), and returns our Outcome.
    """

    def __init__(self, backend):
        self.backend = backend
        self.std = backend.stdlib()
        self.ours = backend.ours()
        self.log = []

    def close(self):
        self.std.close()
        self.ours.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, *args, compare_value=True, **kwargs):
        std = outcome(getattr(self.std, method), *args, **kwargs)
        ours = outcome(getattr(self.ours, method), *args, **kwargs)
        self.log.append((method, args, kwargs, std, ours))
        where = f"{self.backend.name}: {method}{args!r}{kwargs or ''}"
        if compare_value:
            assert ours.signature() == std.signature(), (
                f"{where}: stdlib {std!r}, reactor {ours!r}"
            )
        else:
            assert (ours.raised, type(ours.exc)) == (std.raised, type(std.exc)), (
                f"{where}: stdlib {std!r}, reactor {ours!r}"
            )
        self.check_map()
        return ours

    def check_map(self):
        std_map = snapshot_map(self.std)
        our_map = snapshot_map(self.ours)
        assert our_map == std_map, (
            f"{self.backend.name}: get_map() differs: stdlib {std_map!r}, reactor {our_map!r}"
        )
        if our_map is not None:
            assert len(self.ours.get_map()) == len(self.std.get_map())
            assert sorted(self.ours.get_map()) == sorted(self.std.get_map())

    def select(self, timeout=0):
        return self.call("select", timeout)


def fill(sock):
    """Write into a non-blocking socket until its send buffer is full."""
    sock.setblocking(False)
    try:
        while True:
            sock.send(b"x" * 65536)
    except BlockingIOError:
        pass


def drain(sock):
    """Read everything currently buffered on a socket."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        pass


def unused_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


EBADF = errno_mod.EBADF


def kernel_interest(epfd):
    """{fd: interest mask} of an epoll instance, read from /proc fdinfo.

    The kernel always adds EPOLLERR|EPOLLHUP (0x008|0x010); they are masked off here.  A
    fired one-shot registration shows only its flag bits (disarmed).
    """
    result = {}
    with open(f"/proc/self/fdinfo/{epfd}") as fh:
        for line in fh:
            if line.startswith("tfd:"):
                parts = line.split()
                fd = int(parts[1])
                events = int(parts[3], 16)
                result[fd] = events & ~(0x008 | 0x010)
    return result
