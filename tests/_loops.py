"""One driver interface over the Reactor, over reactor's asyncio EventLoop and
over asyncio's own loop, so that each protocol-level test body runs on all of
them with the same protocol classes (uvloop's suite does the same with its
Test_UV_* / Test_AIO_* pairs): asyncio is the reference that checks the test
itself.  `driver.api` says which setup API a driver speaks ("reactor": the
callback Reactor's; "asyncio": coroutines, on asyncio's loop or reactor's).

A driver offers the setup calls as plain functions (asyncio's coroutines
are run to completion), `run_until(predicate)` to turn the loop, and
`errors`: every exception the loop's error hook received, as
(exception, where) pairs.
"""

import asyncio
import selectors
import socket
import sys
import time

import pytest

import reactor

__all__ = ["LOOP_KINDS", "make_driver", "skip_asyncio_310", "Connecting", "Recorder"]

LOOP_KINDS = ["reactor-epoll", "reactor-poll", "reactor-select", "reactor-asyncio", "asyncio"]


class Connecting:
    """The outcome of connect(): transport and protocol once connected,
    or error once failed."""

    def __init__(self):
        self.transport = None
        self.protocol = None
        self.error = None
        self.handle = None

    @property
    def done(self):
        return self.transport is not None or self.error is not None


class _HandleConnecting(Connecting):
    """The Reactor's handle knows transport and protocol as soon as the
    transport exists."""

    def __init__(self):
        self.error = None
        self.handle = None

    transport = property(lambda self: self.handle.transport)
    protocol = property(lambda self: self.handle.protocol)


class Recorder(asyncio.Protocol):
    """A protocol that records every call, in order, and what it received.

    `events` holds ("made",), ("data", bytes), ("eof",), ("lost", exc),
    ("pause_writing",), ("resume_writing",); `received` the bytes joined;
    `eof_result` is what eof_received() returns.
    """

    eof_result = None

    def __init__(self):
        self.events = []
        self.transport = None
        self.chunks = []
        self.lost = None
        self.lost_count = 0

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def data_received(self, data):
        self.chunks.append(data)
        self.events.append(("data", data))

    def eof_received(self):
        self.events.append(("eof",))
        return self.eof_result

    def connection_lost(self, exc):
        self.lost = exc
        self.lost_count += 1
        self.events.append(("lost", exc))

    def pause_writing(self):
        self.events.append(("pause_writing",))

    def resume_writing(self):
        self.events.append(("resume_writing",))

    @property
    def received(self):
        return b"".join(self.chunks)

    def kinds(self):
        """The sequence of calls, consecutive data merged."""
        out = []
        for event in self.events:
            if event[0] == "data" and out and out[-1] == "data":
                continue
            out.append(event[0])
        return out


class _Driver:
    kind: str

    def __init__(self):
        self.errors = []
        self._servers = []

    def run_until(self, predicate, timeout=10.0, what=None):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.kind}: timed out waiting for {what or predicate}")
            self._turn()
        return True

    def run_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._turn()

    # _connecting(make, factory, *args, **options): make() the connection
    # the loop's way, recording its transport, protocol or error.

    def connect(self, factory, host="127.0.0.1", port=None, **options):
        return self._connecting(self.loop.create_connection, factory, host, port, **options)

    def unix_connect(self, factory, path, **options):
        return self._connecting(self.loop.create_unix_connection, factory, path, **options)

    def cancel(self, connecting):
        connecting.handle.cancel()

    def port_of(self, server):
        return server.sockets[0].getsockname()[1]


class ReactorDriver(_Driver):
    api = "reactor"

    def __init__(self, selector_class):
        super().__init__()
        self.kind = f"reactor-{selector_class.__name__[:-8].lower()}"
        self.loop = reactor.Reactor(selector_class())
        self.loop.handle_exception = self._hook

    def _hook(self, exc, where=None):
        self.errors.append((exc, where))

    def _turn(self):
        self.loop.run_once(0.01)

    def server(self, factory, host="127.0.0.1", port=0, **options):
        server = self.loop.create_server(factory, host, port, **options)
        self._servers.append(server)
        return server

    def unix_server(self, factory, path, **options):
        server = self.loop.create_unix_server(factory, path, **options)
        self._servers.append(server)
        return server

    def _connecting(self, make, factory, *args, **options):
        result = _HandleConnecting()

        def failed(exc):
            result.error = exc

        result.handle = make(factory, *args, on_error=failed, **options)
        return result

    def datagram(self, factory, local_addr=None, remote_addr=None, **options):
        return self.loop.create_datagram_endpoint(factory, local_addr, remote_addr, **options)

    def call_soon(self, callback, *args):
        return self.loop.call_soon(callback, *args)

    def call_later(self, delay, callback, *args):
        return self.loop.call_later(delay, callback, *args)

    def close(self):
        for server in self._servers:
            server.close()
            server.close_clients()
        # Let transports finish closing (connection_lost runs in a turn).
        self.run_for(0.02)
        self.loop.close()


class AsyncioDriver(_Driver):
    api = "asyncio"

    def __init__(self, kind="asyncio"):
        super().__init__()
        self.kind = kind
        if kind == "asyncio":
            self.loop = asyncio.SelectorEventLoop(selectors.DefaultSelector())
        else:
            self.loop = reactor.new_event_loop()
        self.loop.set_exception_handler(self._hook)

    def _hook(self, loop, context):
        self.errors.append((context.get("exception"), context.get("message")))

    def _turn(self):
        self.loop.run_until_complete(asyncio.sleep(0.001))

    def server(self, factory, host="127.0.0.1", port=0, **options):
        server = self.loop.run_until_complete(
            self.loop.create_server(factory, host, port, **options)
        )
        self._servers.append(server)
        return server

    def unix_server(self, factory, path, **options):
        server = self.loop.run_until_complete(
            self.loop.create_unix_server(factory, path, **options)
        )
        self._servers.append(server)
        return server

    def _connecting(self, make, *args, **options):
        result = Connecting()

        async def go():
            try:
                result.transport, result.protocol = await make(*args, **options)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result.error = exc

        result.handle = self.loop.create_task(go())
        return result

    def datagram(self, factory, local_addr=None, remote_addr=None, **options):
        return self.loop.run_until_complete(
            self.loop.create_datagram_endpoint(factory, local_addr, remote_addr, **options)
        )

    def call_soon(self, callback, *args):
        return self.loop.call_soon(callback, *args)

    def call_later(self, delay, callback, *args):
        return self.loop.call_later(delay, callback, *args)

    def close(self):
        for server in self._servers:
            server.close()
        # asyncio's Server.close() leaves accepted connections open (3.13
        # added close_clients()); close what is left, as the Reactor's tests do.
        for transport in list(self.loop._transports.values()):
            if transport is not None and not transport.is_closing():
                transport.close()
        self.run_for(0.02)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def skip_asyncio_310(driver, why, kinds=("asyncio",)):
    """asyncio 3.10 as the reference (`driver`, or its kind), where it
    differs from 3.11+ (which the Reactor follows on every version); `kinds`
    adds reactor-asyncio where the behaviour is asyncio's own code there too."""
    kind = getattr(driver, "kind", driver)
    if kind in kinds and sys.version_info < (3, 11):
        pytest.skip(f"asyncio 3.10 {why}; the Reactor follows 3.11+")


def make_driver(kind):
    if kind in ("asyncio", "reactor-asyncio"):
        return AsyncioDriver(kind)
    selector = {
        "reactor-epoll": reactor.EpollSelector,
        "reactor-poll": reactor.PollSelector,
        "reactor-select": reactor.SelectSelector,
    }[kind]
    return ReactorDriver(selector)


def closed_port():
    """A loopback TCP port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
