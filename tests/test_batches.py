"""One wait's results are dispatched in full (reactor._poller [W3]), on both
loops: an exception leaving the dispatch (KeyboardInterrupt from a protocol,
a signal handler raising as the wait returned) loses none of the bytes the
wait already read, and a nested iteration is refused."""

import asyncio
import socket

import pytest

import reactor
import reactor._epoll as epoll_module

PAIRS = 4


class Once(asyncio.Protocol):
    """Records what it receives; the first data_received() of all raises
    KeyboardInterrupt when `interrupt` is set."""

    interrupt = False
    received = None

    def __init__(self, name):
        self.name = name

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        Once.received[self.name] = Once.received.get(self.name, b"") + data
        if Once.interrupt:
            Once.interrupt = False
            raise KeyboardInterrupt


class ReactorLoop:
    def __init__(self):
        self.loop = reactor.Reactor()
        self.errors = []
        self.loop.handle_exception = lambda exc, where=None: self.errors.append(exc)

    def adopt(self, factory, sock):
        handle = self.loop.create_connection(factory, sock=sock)
        self.turn(lambda: handle.transport is not None)
        self.turn(lambda: False, 0.02)  # connection_made(), then reading started
        return handle.transport

    def turn(self, until, seconds=5.0):
        import time

        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            self.loop.run_once(0.01)

    def close(self):
        self.loop.close()


class AsyncioLoop:
    def __init__(self):
        self.loop = reactor.new_event_loop()
        self.errors = []
        self.loop.set_exception_handler(
            lambda lp, context: self.errors.append(context.get("exception"))
        )

    def adopt(self, factory, sock):
        transport, _ = self.loop.run_until_complete(
            self.loop.connect_accepted_socket(factory, sock)
        )
        self.loop.run_until_complete(asyncio.sleep(0.02))  # reading started
        return transport

    def turn(self, until, seconds=5.0):
        async def wait():
            for _ in range(int(seconds / 0.01)):
                if until():
                    return
                await asyncio.sleep(0.01)

        self.loop.run_until_complete(wait())

    def close(self):
        self.loop.close()


@pytest.fixture(params=["reactor", "asyncio-api"])
def driver(request):
    drv = ReactorLoop() if request.param == "reactor" else AsyncioLoop()
    Once.received = {}
    Once.interrupt = False
    pairs = [socket.socketpair() for _ in range(PAIRS)]
    drv.transports = [drv.adopt(lambda i=i: Once(i), a) for i, (a, b) in enumerate(pairs)]
    drv.peers = [b for a, b in pairs]
    yield drv
    for transport in drv.transports:
        transport.close()
    drv.turn(lambda: False, 0.02)
    for peer in drv.peers:
        peer.close()
    drv.close()


def _send_all(drv):
    for index, peer in enumerate(drv.peers):
        peer.send(b"message %d" % index)


def _everything_arrived():
    return Once.received == {i: b"message %d" % i for i in range(PAIRS)}


def test_keyboard_interrupt_from_a_protocol_in_a_batch_loses_no_bytes(driver):
    _send_all(driver)
    Once.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        driver.turn(lambda: False, 0.2)
    assert len(Once.received) == 1  # the others wait for the next iteration
    driver.turn(_everything_arrived)
    assert _everything_arrived()


def test_a_signal_handler_raising_as_the_wait_returns_loses_no_bytes(driver, monkeypatch):
    # The wait has read every ready socket; a Python signal handler then
    # raises before its result reaches the Poller (simulated: the call
    # returns, then KeyboardInterrupt).
    real = epoll_module._wait_read
    raised = []

    def wait_then_interrupted(state, timeout_ns, reads):
        n = real(state, timeout_ns, reads)
        if n and not raised:
            raised.append(n)
            raise KeyboardInterrupt
        return n

    monkeypatch.setattr(epoll_module, "_wait_read", wait_then_interrupted)
    _send_all(driver)
    with pytest.raises(KeyboardInterrupt):
        driver.turn(lambda: False, 0.5)
    assert raised and Once.received == {}
    driver.turn(_everything_arrived)
    assert _everything_arrived()


def test_nested_run_once_is_refused():
    loop = reactor.Reactor()
    errors = []
    loop.handle_exception = lambda exc, where=None: errors.append(exc)
    loop.call_soon(loop.run_once, 0)
    try:
        loop.run_once(0)
    finally:
        loop.close()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "run_once() cannot be called from a callback" in str(errors[0])
