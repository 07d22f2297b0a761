"""What every layer above the selectors shares: scheduled callbacks
(Handle, TimerHandle), how an error report names a callback (describe), and
the "reactor" logger.  A leaf: it imports nothing of reactor's."""

from __future__ import annotations

import logging

__all__ = ["Handle", "TimerHandle", "describe", "check_callable", "logger"]

logger = logging.getLogger("reactor")


class Handle:
    """A scheduled callback; ``cancel()`` stops it from running."""

    __slots__ = ("_callback", "_args", "_cancelled")

    def __init__(self, callback, args):
        self._callback = callback
        self._args = args
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True
        self._callback = self._args = None

    def cancelled(self) -> bool:
        return self._cancelled

    def __repr__(self):
        state = (
            "cancelled"
            if self._cancelled
            else getattr(self._callback, "__qualname__", repr(self._callback))
        )
        return f"<{type(self).__name__} {state}>"


class TimerHandle(Handle):
    """A callback scheduled for a time on the monotonic clock."""

    __slots__ = ("when", "_reactor", "_sequence")

    def __init__(self, when, callback, args, reactor, sequence):
        super().__init__(callback, args)
        self.when = when
        self._reactor = reactor
        self._sequence = sequence  # equal times run in the order scheduled

    def cancel(self):
        if not self._cancelled and self._reactor is not None:
            self._reactor._timer_cancelled()  # still in the heap
        super().cancel()

    def __lt__(self, other):
        if self.when == other.when:
            return self._sequence < other._sequence
        return self.when < other.when


def describe(callback):
    """How error messages name a callback: its qualified name (a bound
    method shows its class), a string as it is."""
    if callback is None:
        return "a callback"
    if isinstance(callback, str):
        return callback
    name = getattr(callback, "__qualname__", None)
    if name is None:
        return repr(callback)
    module = getattr(callback, "__module__", None)
    if module not in (None, "__main__", "builtins"):
        name = f"{module}.{name}"
    return f"{name}()"


def check_callable(callback):
    # Here, not when the loop runs it, as asyncio does.
    if not callable(callback):
        raise TypeError(f"a callback must be callable, not {type(callback).__name__}")
