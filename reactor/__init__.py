"""reactor: the stdlib's selectors, on direct epoll, poll and select syscalls,
and a callback loop (Reactor) with a small TCP layer on top.

A drop-in for the ``selectors`` module (same classes, signatures, return
values and exceptions) with what it cannot do: fds >= 1024 on select,
nanosecond timeouts, epoll's extra flags, and safety across fork() and fd
reuse.  See README.md.
"""

from selectors import EVENT_READ, EVENT_WRITE, SelectorKey

try:
    from . import _native
except ImportError as exc:  # a source checkout whose extension was not built
    raise ImportError(
        "reactor's compiled extension reactor._native is missing: install the "
        "package (pip install .) or, in a checkout, pip install -e . "
        f"({exc})") from exc

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

from ._loop import Handle, Reactor, TimerHandle  # noqa: E402  (uses the selectors)
from ._tcp import Connection, TCPServer  # noqa: E402
from ._asyncio import EventLoopPolicy, install, new_event_loop  # noqa: E402

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
    "Reactor",
    "Handle",
    "TimerHandle",
    "TCPServer",
    "Connection",
    "new_event_loop",
    "EventLoopPolicy",
    "install",
]
