"""asyncio on reactor's selector: the loop is asyncio's own
SelectorEventLoop, so asyncio behaves exactly as it does on the stdlib's
selectors (streams, servers, sock_* calls, subprocesses, timeouts, signals);
only the selector under it changes."""

import asyncio

from ._epoll import EpollSelector

__all__ = ["new_event_loop", "EventLoopPolicy", "install"]


def new_event_loop():
    """An asyncio.SelectorEventLoop on reactor's DefaultSelector."""
    return asyncio.SelectorEventLoop(EpollSelector())


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making loops with new_event_loop()."""

    def new_event_loop(self):
        return new_event_loop()


def install():
    """Make asyncio's default loops (asyncio.run, new_event_loop, ...) run on
    reactor's selector, as uvloop.install() does for uvloop."""
    asyncio.set_event_loop_policy(EventLoopPolicy())
