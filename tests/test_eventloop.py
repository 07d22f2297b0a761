"""reactor.EventLoop: the entry points (run, new_event_loop, EventLoopPolicy,
install) and what users of an asyncio loop can observe of it, each checked
against asyncio's own loop where asyncio defines the behaviour."""

import asyncio
import contextvars
import logging
import signal
import socket
import sys
import warnings

import pytest

import reactor

LOOPS = {"reactor": reactor.new_event_loop, "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def loop(request):
    lp = LOOPS[request.param]()
    lp.kind = request.param
    yield lp
    lp.run_until_complete(lp.shutdown_asyncgens())
    lp.close()


@pytest.fixture
def policy_restored():
    previous = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(previous)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


# -- entry points ---------------------------------------------------------------------


def test_run_runs_the_coroutine_on_a_reactor_event_loop():
    async def main():
        return type(asyncio.get_running_loop()), asyncio.get_running_loop().get_debug()

    assert reactor.run(main()) == (reactor.EventLoop, False)
    assert reactor.run(main(), debug=True) == (reactor.EventLoop, True)


def test_run_refuses_a_running_loop_and_a_non_coroutine():
    async def nested():
        coro = asyncio.sleep(0)
        try:
            reactor.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError, match="running event loop"):
        reactor.run(nested())
    with pytest.raises((ValueError, TypeError), match="coroutine"):
        reactor.run(lambda: None)


def test_run_closes_the_loop_and_finalizes_async_generators():
    finalized = []
    loops = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    async def main():
        loops.append(asyncio.get_running_loop())
        gen = agen()
        await gen.__anext__()  # left suspended: run() must finalize it

    reactor.run(main())
    assert finalized == [True]
    assert loops[0].is_closed()


def test_new_event_loop_is_a_complete_asyncio_loop():
    lp = reactor.new_event_loop()
    try:
        assert isinstance(lp, reactor.EventLoop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert lp.run_until_complete(asyncio.sleep(0, "done")) == "done"
    finally:
        lp.close()


def test_policy_and_install(policy_restored):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reactor.install()
    deprecated = [
        w
        for w in caught
        if issubclass(w.category, DeprecationWarning)
        and "reactor.install() is deprecated" in str(w.message)
    ]
    assert len(deprecated) == (1 if sys.version_info >= (3, 12) else 0)
    assert isinstance(asyncio.get_event_loop_policy(), reactor.EventLoopPolicy)
    lp = asyncio.new_event_loop()
    try:
        assert isinstance(lp, reactor.EventLoop)
    finally:
        lp.close()


# -- one iteration's order -----------------------------------------------------------------


def _order_of_one_iteration(loop, schedule):
    """What runs, in order, once `schedule(peer, order)` has set up an
    iteration (bytes from `peer`, callbacks appending to `order`): the
    protocol's data_received() appends "io" and schedules "scheduled by io"."""
    order = []
    a, b = socket.socketpair()

    class Recording(asyncio.Protocol):
        def data_received(self, data):
            order.append("io")
            loop.call_soon(order.append, "scheduled by io")

    async def main():
        transport, _ = await loop.connect_accepted_socket(Recording, a)
        await asyncio.sleep(0.05)  # reading has started
        schedule(b, order)
        await asyncio.sleep(0.05)
        transport.close()
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        b.close()
    return order


def test_iteration_order_is_asyncios(loop):
    """Callbacks ready before the wait, then IO, then due timers
    (base_events._run_once); what they schedule runs in the next iteration."""

    def next_iteration(peer, order):
        # Bytes readable, a callback ready and a timer due: all three for
        # the iteration after this one.
        peer.send(b"x")
        loop.call_soon(order.append, "ready")
        loop.call_at(loop.time() - 1, order.append, "timer")

    order = _order_of_one_iteration(
        loop, lambda peer, order: loop.call_soon(next_iteration, peer, order)
    )
    assert order == ["ready", "io", "timer", "scheduled by io"]


def test_what_io_schedules_waits_for_the_next_iteration_when_nothing_was_ready(loop):
    """With nothing ready the IO runs at once, not behind a handle; what it
    schedules still waits for the timers that are due and for the next
    iteration, as in asyncio (uvloop's test_process_send_signal_1 raced:
    a task woken by a pipe's data ran in the same iteration, before the
    pipe's EOF was read, and found the process gone first)."""

    def from_a_timer(peer, order):
        # Nothing ready after this: the next wait finds the bytes.
        peer.send(b"x")
        loop.call_at(loop.time() - 1, order.append, "timer")

    order = _order_of_one_iteration(
        loop, lambda peer, order: loop.call_later(0.001, from_a_timer, peer, order)
    )
    assert order == ["io", "timer", "scheduled by io"]


# -- contextvars --------------------------------------------------------------------------

cvar = contextvars.ContextVar("cvar", default="outer")


def test_protocol_methods_run_in_the_context_the_transport_was_made_in():
    seen = {}

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            seen["made"] = cvar.get()
            self.transport = transport

        def data_received(self, data):
            seen["data"] = cvar.get()
            cvar.set("changed in data_received")  # not visible to the caller's context

        def eof_received(self):
            seen["eof"] = cvar.get()

        def connection_lost(self, exc):
            seen["lost"] = cvar.get()

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client():
            cvar.set("inner")
            return await loop.create_connection(Probe, "127.0.0.1", port)

        transport, protocol = await asyncio.create_task(client())
        transport.write(b"ping")
        while "data" not in seen:
            await asyncio.sleep(0.01)
        cvar.set("closing")  # close() from another context: connection_lost keeps its own
        transport.close()
        while "lost" not in seen:
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return cvar.get()

    assert reactor.run(main()) == "closing"
    assert seen == {"made": "inner", "data": "inner", "lost": "changed in data_received"}


# -- errors, as asyncio reports them ------------------------------------------------------------


def test_a_raising_data_received_is_reported_with_asyncios_context(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, context: contexts.append(context))

    class Raising(asyncio.Protocol):
        def data_received(self, data):
            raise ZeroDivisionError("in data_received")

        def connection_lost(self, exc):
            self.lost = exc

    async def main():
        server = await loop.create_server(Raising, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"boom")
        assert await reader.read() == b""  # aborted
        writer.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert len(contexts) == 1
    context = contexts[0]
    assert context["message"] == "Fatal error: protocol.data_received() call failed."
    assert isinstance(context["exception"], ZeroDivisionError)
    assert isinstance(context["protocol"], Raising)
    assert context["transport"].is_closing()


def test_bytes_read_with_a_write_backlog_reach_a_protocol_in_its_context(loop):
    # An event with the read and the write bit takes the Poller's slow path,
    # which enters the transport's context: the bytes went on through the
    # context-entering shortcut, and contextvars refused to enter it twice
    # ("cannot enter context"), so the connection was aborted.  asyncio's
    # TLS before 3.11 (a plain Protocol under a write backlog) met it at once.
    contexts = []
    loop.set_exception_handler(lambda lp, context: contexts.append(context))
    received = []

    class Sink(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            received.append((cvar.get(), data))

    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        cvar.set("made here")
        transport, _ = await loop.connect_accepted_socket(Sink, a)
        transport.write(b"x" * (8 << 20))  # more than the socket buffers take
        assert transport.get_write_buffer_size() > 0
        b.send(b"ping")
        while not received and not contexts:
            try:  # make room, so that the socket is writable and readable
                b.recv(1 << 20)
            except BlockingIOError:
                pass
            await asyncio.sleep(0.001)
        transport.abort()
        b.close()
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert contexts == []
    assert received == [("made here", b"ping")]


def test_add_reader_on_a_transports_fd_is_refused(loop):
    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Echo, a)
        try:
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_reader(a.fileno(), lambda: None)
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_writer(a.fileno(), lambda: None)
        finally:
            transport.close()
            b.close()
            await asyncio.sleep(0)

    loop.run_until_complete(main())


def test_a_reader_replaced_after_the_wait_stays_registered(loop):
    """A callback ready before the wait removes the fd's reader (cancelling
    its handle) and adds another; the wait's event still names the old
    key.  Seeing the cancelled handle, the loop removed the fd's reader: the
    new one, so it never ran (sock_recv() does this once per call: uvloop's
    test_create_server_1 hung on it)."""
    a, b = socket.socketpair()
    a.setblocking(False)
    called = []

    async def main():
        replaced = loop.create_future()
        loop.add_reader(a, called.append, "old")

        def swap():
            loop.remove_reader(a)
            loop.add_reader(a, lambda: replaced.done() or replaced.set_result(a.recv(1)))

        def send_then_swap():
            b.send(b"x")
            loop.call_soon(swap)  # ready before the next wait, which sees the bytes

        loop.call_soon(send_then_swap)
        try:
            return await asyncio.wait_for(replaced, 2)
        finally:
            loop.remove_reader(a)

    try:
        assert loop.run_until_complete(main()) == b"x"
    finally:
        a.close()
        b.close()
    assert called == []


def test_a_timer_falling_due_while_io_callbacks_run_waits_behind_what_they_scheduled(loop):
    """asyncio decides which timers are due when its wait returns: a reply
    that came in time is not lost to a deadline that passed while the
    protocol's callback ran (asyncio.timeout() saw a TimeoutError)."""
    import time

    log = []

    class Slow(asyncio.Protocol):
        def data_received(self, data):
            log.append("data_received")
            loop.call_soon(log.append, "call_soon from data_received")
            time.sleep(0.1)

    async def main():
        a, b = socket.socketpair()
        with b:
            await loop.connect_accepted_socket(Slow, a)
            await asyncio.sleep(0.01)
            loop.call_later(0.05, log.append, "timer")
            b.send(b"x")
            await asyncio.sleep(0.2)

    loop.run_until_complete(main())
    assert log == ["data_received", "call_soon from data_received", "timer"]


def test_a_slow_data_received_is_logged_in_debug_mode(loop, caplog):
    import time

    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    class Slow(asyncio.Protocol):
        def data_received(self, data):
            time.sleep(0.05)

    async def main():
        a, b = socket.socketpair()
        with b:
            transport, _ = await loop.connect_accepted_socket(Slow, a)
            await asyncio.sleep(0.01)
            b.send(b"x")
            await asyncio.sleep(0.1)
            transport.close()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(main())
    assert any("Executing" in r.getMessage() and "took" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("pause", [True, False], ids=["paused", "not-paused"])
def test_bytes_already_read_reach_a_protocol_switched_to_a_buffered_one(loop, pause):
    """set_protocol() to a BufferedProtocol, as start_tls() does, while the
    peer's next bytes are in: they reach the new protocol's buffer (reactor's
    wait had read them for the old one, and they were dropped)."""
    log = []

    class Buffered(asyncio.BufferedProtocol):
        buf = bytearray(4)  # smaller than what comes: fed in pieces

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            log.append(bytes(self.buf[:nbytes]))

        def connection_lost(self, exc):
            log.append(("lost", exc))

    class Plain(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            log.append(data)
            peer.send(b"second")  # readable before the next wait
            loop.call_soon(self.switch)

        def switch(self):
            if pause:
                self.transport.pause_reading()
            self.transport.set_protocol(Buffered())
            if pause:
                loop.call_soon(self.transport.resume_reading)

    errors = []
    loop.set_exception_handler(lambda lp, context: errors.append(context))
    a, peer = socket.socketpair()

    async def main():
        with peer:
            transport, _ = await loop.connect_accepted_socket(Plain, a)
            peer.send(b"first")
            await asyncio.sleep(0.05)
            transport.close()
            await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    assert errors == []
    assert log == [b"first", b"seco", b"nd", ("lost", None)]


def test_slow_callbacks_are_logged_in_debug_mode(loop, caplog):
    import time

    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def main():
        loop.call_soon(time.sleep, 0.05)
        await asyncio.sleep(0.1)

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(main())
    assert any("Executing" in r.getMessage() and "took" in r.getMessage() for r in caplog.records)


# -- servers -----------------------------------------------------------------------------------


def test_server_start_serving_serve_forever_and_close(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        await server.start_serving()
        assert server.is_serving()
        port = server.sockets[0].getsockname()[1]
        serving = asyncio.ensure_future(server.serve_forever())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        if sys.version_info >= (3, 13):
            server.close_clients()
            assert await reader.read() == b""
        writer.close()
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        assert not server.is_serving()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_signal_handler(loop):
    async def main():
        got = asyncio.get_running_loop().create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "usr1")
        signal.raise_signal(signal.SIGUSR1)
        assert await asyncio.wait_for(got, 5) == "usr1"
        loop.remove_signal_handler(signal.SIGUSR1)

    loop.run_until_complete(main())


def test_a_transport_takes_attributes_and_patched_methods_as_asyncios_do(loop):
    # aiohttp's tests patch transport.write with unittest.mock; asyncio's
    # transports have a __dict__.
    from unittest import mock

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Echo, a)
        try:
            transport.note = "kept"
            with mock.patch.object(transport, "write", side_effect=ConnectionResetError):
                with pytest.raises(ConnectionResetError):
                    transport.write(b"x")
            assert transport.note == "kept"
        finally:
            transport.close()
            b.close()
            await asyncio.sleep(0)

    loop.run_until_complete(main())


def test_mostly_cancelled_timers_are_dropped_from_the_heap_at_once(loop):
    # _eventloop.py's _run_once, as asyncio's: past 100 timers, more than
    # half of them cancelled, one pass rebuilds the heap without them.
    fired = []
    handles = [loop.call_later(60 + i, fired.append, i) for i in range(200)]
    for handle in handles[:150]:
        handle.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(loop._scheduled) == 50 and loop._timer_cancelled_count == 0
    assert fired == []
    for handle in handles[150:]:
        handle.cancel()
