"""The loops a Ring sits on, behind one small interface for the tests:
reactor's Reactor, asyncio's default loop, and uvloop when installed (each
Ring test runs on all of them, uvloop-style, so the reference loop checks
the test itself)."""

import asyncio
import time

import pytest

import reactor

try:
    import uvloop
except ImportError:  # pragma: no cover - it is in the bench extra
    uvloop = None
else:
    # uvloop's first loop opens a process-wide pipe (libuv's signal pipe)
    # that stays open: open it now, not inside a test checked for fd leaks.
    _first = uvloop.new_event_loop()
    _first.run_until_complete(asyncio.sleep(0))
    _first.close()
    del _first


class LoopHarness:
    """A loop to run until something is true."""

    kind = ""

    def run_until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
            self.run_once()

    def run_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.run_once()


class ReactorHarness(LoopHarness):
    kind = "reactor"

    def __init__(self):
        self.loop = reactor.Reactor()
        self.errors = []
        self.loop.handle_exception = lambda exc, callback: self.errors.append(exc)

    def run_once(self):
        self.loop.run_once(0.01)

    def close(self):
        self.loop.close()


class AsyncioHarness(LoopHarness):
    kind = "asyncio"

    def __init__(self, make=asyncio.new_event_loop):
        self.loop = make()
        self.errors = []
        self.loop.set_exception_handler(
            lambda loop, context: self.errors.append(context.get("exception", context["message"]))
        )

    def run_once(self):
        self.loop.run_until_complete(asyncio.sleep(0.001))

    def close(self):
        self.loop.close()


def _uvloop():
    if uvloop is None:
        pytest.skip("uvloop is not installed (pip install uvloop)")
    harness = AsyncioHarness(uvloop.new_event_loop)
    harness.kind = "uvloop"
    return harness


HARNESSES = {"reactor": ReactorHarness, "asyncio": AsyncioHarness, "uvloop": _uvloop}
