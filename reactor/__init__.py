"""reactor: the stdlib's selectors, on direct epoll, poll and select syscalls,
and a callback loop (Reactor) with asyncio's protocols and transports on top.

A drop-in for the ``selectors`` module (same classes, signatures, return
values and exceptions) with what it cannot do: fds >= 1024 on select,
nanosecond timeouts, epoll's extra flags, and safety across fork() and fd
reuse.  See README.md.

``import reactor`` loads only the selectors, so that swapping it in for
``selectors`` costs a program little more than the module it replaces; the
loop, the transports and the asyncio glue load when first used (PEP 562).
"""

from selectors import EVENT_READ, EVENT_WRITE, SelectorKey

__version__ = "0.1.0"  # the package's one version: pyproject.toml reads it from here

try:
    from . import _native  # noqa: F401  (imported to fail early, with the message below)
except ImportError as exc:  # a source checkout whose extension was not built
    raise ImportError(
        "reactor's compiled extension reactor._native is missing: install the "
        "package (pip install .) or, in a checkout, pip install -e . "
        f"({exc})"
    ) from exc

from ._epoll import (
    EPOLLET,
    EPOLLEXCLUSIVE,
    EPOLLONESHOT,
    EPOLLPRI,
    EPOLLRDHUP,
    EpollSelector,
    StaleRegistrationWarning,
)
from ._poll import PollSelector
from ._select import SelectSelector

DefaultSelector = EpollSelector

# Public name -> the module that defines it, imported on first use.
_LAZY = {
    "Reactor": "_loop",
    "Handle": "_loop",
    "TimerHandle": "_loop",
    "TCPServer": "chapter._tcp",
    "Connection": "chapter._tcp",
    "EventLoop": "_eventloop",
    "run": "_eventloop",
    "new_event_loop": "_eventloop",
    "EventLoopPolicy": "_eventloop",
    "install": "_eventloop",
    "Ring": "uring._ring",
    "Operation": "uring._ops",
    "BufferRing": "uring._bufring",
    "uring_available": "uring._probe",
    "open_file": "uring._files",
    "read_bytes": "uring._files",
    "write_bytes": "uring._files",
}

__all__ = [
    "EVENT_READ",
    "EVENT_WRITE",
    "SelectorKey",
    "EpollSelector",
    "PollSelector",
    "SelectSelector",
    "DefaultSelector",
    "EPOLLET",
    "EPOLLONESHOT",
    "EPOLLEXCLUSIVE",
    "EPOLLRDHUP",
    "EPOLLPRI",
    "StaleRegistrationWarning",
    *_LAZY,
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reactor' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
