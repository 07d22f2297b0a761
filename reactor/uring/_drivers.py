"""How a Ring lives on a loop: a driver watches the ring's eventfd and
reports a callback's exception, for a reactor.Reactor (``register``) or any
asyncio loop, the stdlib's, reactor's or uvloop (``add_reader``).

The loop is recognised by duck typing, so this package imports no loop:
arrows point down.  A driver holds the loop by weak reference; once the loop
is gone or closed, exceptions go to the "reactor" logger.
"""

from __future__ import annotations

import logging
import weakref

logger = logging.getLogger("reactor")


class _ReactorDriver:
    """A reactor.Reactor: register(fd, EVENT_READ, callback(fileobj, mask))."""

    def __init__(self, loop):
        self.loop_ref = weakref.ref(loop)

    def watch(self, fd, callback):
        self.loop_ref().register(fd, 1, lambda fileobj, mask: callback())

    def unwatch(self, fd):
        loop = self.loop_ref()
        if loop is not None and not loop.is_closed():
            try:
                loop.unregister(fd)
            except (KeyError, ValueError):
                pass  # the loop dropped it already (its selector was rebuilt)

    def report(self, exc, callback):
        loop = self.loop_ref()
        if loop is None or loop.is_closed():
            logger.error("exception in io_uring callback %r", callback, exc_info=exc)
        else:
            loop.handle_exception(exc, callback)


class _AsyncioDriver(_ReactorDriver):
    """An asyncio loop (the stdlib's, reactor's, uvloop): add_reader(fd, callback)."""

    def watch(self, fd, callback):
        self.loop_ref().add_reader(fd, callback)

    def unwatch(self, fd):
        loop = self.loop_ref()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(fd)

    def report(self, exc, callback):
        loop = self.loop_ref()
        if loop is None or loop.is_closed():
            logger.error("exception in io_uring callback %r", callback, exc_info=exc)
        else:
            loop.call_exception_handler(
                {"message": f"exception in io_uring callback {callback!r}", "exception": exc}
            )


def _driver_for(loop):
    if hasattr(loop, "add_reader") and hasattr(loop, "call_soon"):
        return _AsyncioDriver(loop)
    if hasattr(loop, "register") and hasattr(loop, "call_soon"):
        return _ReactorDriver(loop)
    raise TypeError(
        f"loop must be a reactor.Reactor or an asyncio event loop, not {type(loop).__name__}"
    )
