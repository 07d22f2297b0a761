"""asyncio on reactor's loop (reactor._eventloop): new_event_loop(),
install(), and asyncio's own machinery (streams, sock_* calls, subprocesses,
timeouts, signal handlers) running on it."""

import asyncio
import os
import selectors
import signal
import socket
import sys
import threading
import warnings

import pytest

import reactor


@pytest.fixture
def policy_restored():
    """Whatever a test does to the event loop policy is undone after it."""
    previous = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(previous)


def install():
    """reactor.install(), without the DeprecationWarning it gives from Python
    3.12 on (tests/test_eventloop.py checks that warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "reactor.install", DeprecationWarning)
        reactor.install()


@pytest.fixture
def loop():
    lp = reactor.new_event_loop()
    yield lp
    lp.close()


def test_new_event_loop_is_selector_loop_on_reactor_epoll(loop):
    assert isinstance(loop, asyncio.SelectorEventLoop)
    assert isinstance(loop._selector, reactor.EpollSelector)
    assert not isinstance(loop._selector, selectors.EpollSelector)
    assert loop.run_until_complete(asyncio.sleep(0, "done")) == "done"


def test_new_event_loop_gives_independent_loops():
    a, b = reactor.new_event_loop(), reactor.new_event_loop()
    try:
        assert a is not b and a._selector is not b._selector
    finally:
        a.close()
        b.close()


def test_install_makes_asyncio_run_use_reactor(policy_restored):
    async def which():
        return type(asyncio.get_running_loop()._selector)

    previous = asyncio.get_event_loop_policy()
    install()
    try:
        assert isinstance(asyncio.get_event_loop_policy(), reactor.EventLoopPolicy)
        assert asyncio.run(which()) is reactor.EpollSelector
        lp = asyncio.new_event_loop()
        try:
            assert isinstance(lp._selector, reactor.EpollSelector)
        finally:
            lp.close()
    finally:
        asyncio.set_event_loop_policy(previous)
    # Restored: asyncio is back on the stdlib's selector.
    assert asyncio.run(which()) is selectors.DefaultSelector


def test_streams_echo(loop):
    async def main():
        async def handle(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            replies = []
            for msg in (b"hello", b"x" * 10, bytes(range(256)) * 4096):
                writer.write(msg)
                await writer.drain()
                replies.append(await reader.readexactly(len(msg)) == msg)
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
            return replies
        finally:
            server.close()
            await server.wait_closed()

    assert loop.run_until_complete(asyncio.wait_for(main(), 10)) == [True, True, True]


def test_many_concurrent_stream_clients(policy_restored):
    install()

    async def main():
        async def handle(reader, writer):
            data = await reader.readline()
            writer.write(b"echo:" + data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"%d\n" % i)
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            return reply

        async with server:
            return await asyncio.gather(*(client(i) for i in range(100)))

    replies = asyncio.run(asyncio.wait_for(main(), 20))
    assert replies == [b"echo:%d\n" % i for i in range(100)]


def test_sock_recv_and_sendall(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    data = os.urandom(1 << 20)

    async def main():
        send = asyncio.ensure_future(loop.sock_sendall(a, data))
        got = bytearray()
        while len(got) < len(data):
            chunk = await loop.sock_recv(b, 65536)
            assert chunk
            got += chunk
        await send
        return bytes(got)

    try:
        assert loop.run_until_complete(asyncio.wait_for(main(), 10)) == data
    finally:
        a.close()
        b.close()


def test_sock_connect_accept(loop):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    client = socket.socket()
    client.setblocking(False)

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, _ = await accept
        with conn:
            await loop.sock_sendall(client, b"ping")
            return await loop.sock_recv(conn, 10)

    try:
        assert loop.run_until_complete(asyncio.wait_for(main(), 10)) == b"ping"
    finally:
        client.close()
        listener.close()


def test_subprocess(policy_restored):
    install()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hello from the child')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return proc.returncode, out

    assert asyncio.run(asyncio.wait_for(main(), 30)) == (0, b"hello from the child\n")


def test_wait_for_timeout(loop):
    async def main():
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.05)
        elapsed = loop.time() - start
        # and a wait_for that does not time out
        assert await asyncio.wait_for(asyncio.sleep(0.01, "ok"), 5) == "ok"
        return elapsed

    elapsed = loop.run_until_complete(main())
    assert 0.05 <= elapsed < 5


def test_sleep_never_returns_early(loop):
    async def main():
        for delay in (0.001, 0.0005, 0.02):
            start = loop.time()
            await asyncio.sleep(delay)
            assert loop.time() - start >= delay

    loop.run_until_complete(main())


def test_call_later_and_call_soon_threadsafe(loop):
    fut = loop.create_future()

    def from_thread():
        loop.call_soon_threadsafe(fut.set_result, "woken")

    loop.call_later(0.02, threading.Thread(target=from_thread).start)
    assert loop.run_until_complete(asyncio.wait_for(fut, 10)) == "woken"


def test_add_signal_handler(loop):
    previous = signal.getsignal(signal.SIGUSR1)
    stray = []
    signal.signal(signal.SIGUSR1, lambda *a: stray.append(a))
    try:
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "sigusr1")
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        assert loop.run_until_complete(asyncio.wait_for(got, 10)) == "sigusr1"
        assert stray == []
        assert loop.remove_signal_handler(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
