"""The io_uring echo server (reactor/chapter/_ring_echo.py) end to end: a real
process (``python -m reactor.chapter._ring_echo``, which ``python -m reactor echo
--backend uring`` runs), real sockets, started by tests/test_echo_cli.py's
echo_server() (whose tests take --backend uring too).

Every byte echoed at 1 and 100 connections, chapter replies and their log
lines, clean exit on SIGINT and SIGTERM, and no fd left behind in the
server when clients come and go.
"""

import errno
import os
import re
import signal
import socket
import threading
import time

import pytest

import reactor
from test_echo_cli import CHAPTER_LINE, IO_TIMEOUT, ask, closed_by_peer, echo_server, recv_exactly

pytestmark = pytest.mark.skipif(
    not reactor.uring_available(), reason=f"{reactor.uring_available().reason}"
)


def ring_echo_server(tmp_path, *args):
    return echo_server(tmp_path, *args, command=("-m", "reactor.chapter._ring_echo"))


BUFFERS = pytest.mark.parametrize(
    "buffers", [[], ["--no-provided-buffers"]], ids=["pool", "per-recv"]
)


@BUFFERS
def test_chapter_replies_and_log_lines(tmp_path, buffers):
    with ring_echo_server(tmp_path, *buffers) as server:
        with server.connect() as c:
            ask(c, b"hi")
            ask(c, b"second message")
            ask(c, b"\xff\xfe")  # not UTF-8: the reply keeps the bytes
        assert server.stop() == 0
        log = server.log()
    assert b"(backend uring, chapter replies," in log
    for msg in (b"hi", b"second message"):
        pattern = CHAPTER_LINE % re.escape(b"Your msg = " + msg + b" ~~~")
        assert re.search(pattern, log, re.MULTILINE), log.decode()
    assert re.search(CHAPTER_LINE % rb"new client \('127\.0\.0\.1', \d+\)", log, re.MULTILINE)
    assert re.search(CHAPTER_LINE % rb"client \('127\.0\.0\.1', \d+\) closed", log, re.MULTILINE)
    assert b"Traceback" not in log


@BUFFERS
def test_raw_echoes_every_byte_unchanged(tmp_path, buffers):
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value: many recvs and short sends
    with ring_echo_server(tmp_path, "--raw", *buffers) as server:
        with server.connect() as c:
            c.sendall(b"hi")
            assert recv_exactly(c, 2) == b"hi"
            c.sendall(data)
            assert recv_exactly(c, len(data)) == data
            c.shutdown(socket.SHUT_WR)
            assert c.recv(10) == b""  # closed after the half-close
        assert server.stop() == 0
        log = server.log()
    assert b"Your msg" not in log and b"Traceback" not in log


@BUFFERS
def test_100_connections_every_byte_and_no_fd_left(tmp_path, buffers):
    with ring_echo_server(tmp_path, "--raw", *buffers) as server:
        idle_fds = len(server.fds())
        for round_ in range(2):
            socks = [server.connect() for _ in range(100)]
            try:
                payloads = [os.urandom(1 + (i * 977) % 20000) for i in range(100)]
                for s, payload in zip(socks, payloads):
                    s.sendall(payload)
                for s, payload in zip(socks, payloads):
                    assert recv_exactly(s, len(payload)) == payload
                for i in reversed(range(100)):  # a second round, out of order
                    socks[i].sendall(b"again %d" % i)
                    assert recv_exactly(socks[i], len(b"again %d" % i)) == b"again %d" % i
            finally:
                for s in socks:
                    s.close()
            deadline = time.monotonic() + IO_TIMEOUT
            while len(server.fds()) > idle_fds and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(server.fds()) == idle_fds, f"round {round_}: the server kept fds"
        assert server.stop() == 0
        assert b"Traceback" not in server.log()


@pytest.mark.parametrize("provided", [True, False], ids=["pool", "per-connection"])
def test_replies_with_a_full_send_buffer_stay_in_order(provided):
    """Regression: a send that came up short completed short without
    breaking its link, so the recv linked to it ran while the rest was
    unsent, and the next message was echoed before the end of this one.
    Sends are MSG_WAITALL now [U15].  In process, with the accepted socket's
    send buffer shrunk so that 64 KiB never fits at once: every byte comes
    back, in order."""
    from reactor.chapter._ring_echo import RingEchoServer

    data = os.urandom(1 << 20)
    got = bytearray()
    with reactor.Reactor() as loop:
        server = RingEchoServer(
            loop, "127.0.0.1", 0, raw=True, max_connections=10, provided_buffers=provided
        )
        client = socket.create_connection(server.address, timeout=IO_TIMEOUT)
        try:
            while not server.connections:
                loop.run_once(0.01)
            [connection] = server.connections
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        except BaseException:
            server.close()
            client.close()
            raise

        def reader():
            while len(got) < len(data):
                chunk = client.recv(4096)
                if not chunk:
                    return
                got.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        sender = threading.Thread(target=client.sendall, args=(data,))
        sender.start()
        try:
            deadline = time.monotonic() + 30
            while thread.is_alive() and time.monotonic() < deadline:
                loop.run_once(0.01)
        finally:
            server.close()
            client.close()
            thread.join()
            sender.join()
    assert len(got) == len(data)
    assert bytes(got) == data


class _RecordingRing:
    """Stands in for the Ring's two submission paths of a _Connection, so
    that the test plays the kernel: _start_pair() succeeds as long as
    `pairs` says so; every call is recorded with its keep."""

    def __init__(self, ring, pairs):
        self.ring, self.pairs, self.calls = ring, list(pairs), []

    def _start_pair(self, prep, args, callback, prep2, args2, callback2, keep=None):
        if not self.pairs.pop(0):
            return False
        self.calls.append(("pair", args[0], keep))
        return True

    def _start(self, prep, args, callback, keep):
        self.calls.append(("one", args[0], keep))
        return 0


def test_a_broken_link_resent_alone_keeps_its_pool_buffer_until_sent():
    """Regression: a raw reply's send came up short (the link broke, its
    recv ends with ECANCELED) and the rest went alone (no room for a pair):
    that ECANCELED closed the connection and gave the pool buffer back while
    the re-send still read from it.  Now the connection waits for the
    re-send, the buffer goes back once it is done, and every send's record
    holds the memory it reads [U6]."""
    from reactor._native import lib
    from reactor.chapter._ring_echo import RingEchoServer, _Connection

    with reactor.Reactor() as loop:
        server = RingEchoServer(loop, "127.0.0.1", 0, raw=True, max_connections=10)
        a, b = socket.socketpair()
        try:
            connection = _Connection(server, b, None)
            fake = connection.ring = _RecordingRing(server.ring, [True, False])
            buffer_id = 5
            flags = lib.IORING_CQE_F_BUFFER | buffer_id << lib.IORING_CQE_BUFFER_SHIFT
            connection.received(100, flags)  # 100 bytes in pool buffer 5: send them
            assert server.buffers.taken == 1
            connection.sent(40, 0)  # short: the link broke; the rest goes alone
            connection.received(-errno.ECANCELED, 0)  # the linked recv's end
            assert not connection.closed and server.buffers.taken == 1
            connection.sent(60, 0)  # the rest is sent: the buffer goes back, a recv starts
            assert server.buffers.taken == 0 and not connection.closed
            send, OP_RECV = lib.IORING_OP_SEND, lib.IORING_OP_RECV
            assert [(kind, op) for kind, op, _keep in fake.calls] == [
                ("pair", send),
                ("one", send),
                ("one", OP_RECV),
            ]
            assert all(keep is server.buffers._pool for _k, op, keep in fake.calls if op == send)
            with pytest.raises(ValueError):
                server.buffers.give_back(buffer_id)  # it went back exactly once
            connection.close()
        finally:
            a.close()
            b.close()
            server.close()


def test_a_chapter_reply_is_kept_by_the_ring_until_sent():
    """The reply's memory is referenced from the send's record in the ring
    [U6], not only from the connection, which close() clears.  A reply
    too big for the socket buffers stays in flight while the client does
    not read; the connection is closed meanwhile."""
    from reactor.chapter._ring_echo import RingEchoServer

    message = b"m" * 60000
    with reactor.Reactor() as loop:
        server = RingEchoServer(loop, "127.0.0.1", 0, raw=False, max_connections=10)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(IO_TIMEOUT)
        try:
            client.connect(server.address)
            deadline = time.monotonic() + IO_TIMEOUT
            while not server.connections and time.monotonic() < deadline:
                loop.run_once(0.01)
            [connection] = server.connections
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            client.sendall(message)
            sends = []
            while not sends and time.monotonic() < deadline:
                loop.run_once(0.01)
                sends = [
                    entry for entry in server.ring._ops.values() if entry[0] == connection.on_sent
                ]
            [(_callback, keep)] = sends
            reply = bytes(ffi_buffer(keep))  # (the message may come in pieces)
            assert reply.startswith(b"Your msg = mmm") and reply.endswith(b"m ~~~")
            connection.close()
            assert connection.reply is None and bytes(ffi_buffer(keep)) == reply
        finally:
            client.close()
            server.close()


def ffi_buffer(cdata):
    from reactor._native import ffi

    return ffi.buffer(cdata)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_clients_connected(tmp_path, signum):
    with ring_echo_server(tmp_path) as server:
        clients = [server.connect() for _ in range(5)]
        try:
            for i, c in enumerate(clients):
                ask(c, b"before %d" % i)
            assert server.stop(signum) == 0
            for c in clients:
                assert closed_by_peer(c)
        finally:
            for c in clients:
                c.close()
        log = server.log()
    assert b"Traceback" not in log
    assert (
        len(
            re.findall(CHAPTER_LINE % rb"client \('127\.0\.0\.1', \d+\) closed", log, re.MULTILINE)
        )
        == 5
    )
    assert b"stopped: 0 connections refused" in log


def test_the_port_is_free_once_stopped(tmp_path):
    """A pending multishot accept holds the listening socket in the kernel
    until the ring has seen its last CQE [U8]: the server waits for it."""
    with ring_echo_server(tmp_path, "--raw") as server:
        with server.connect() as c:
            c.sendall(b"x")
            assert recv_exactly(c, 1) == b"x"
        port = server.address[1]
        assert server.stop() == 0
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


def test_more_connections_than_pool_buffers(tmp_path, monkeypatch):
    """Buffers are picked when data comes, not per connection: 300 clients
    sending at once through a pool of 4 buffers; those that find it empty
    (ENOBUFS) wait for a buffer and lose nothing."""
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")])),
    )
    code = (
        "import reactor.chapter._ring_echo as e; e.POOL_BUFFERS = 4; "
        "e.main(['--port', '0', '--raw'])"
    )
    with echo_server(tmp_path, command=("-c", code)) as server:
        socks = [server.connect() for _ in range(300)]
        try:
            for i, s in enumerate(socks):
                s.sendall(b"%05d" % i * 100)
            for i, s in enumerate(socks):
                assert recv_exactly(s, 500) == b"%05d" % i * 100
        finally:
            for s in socks:
                s.close()
        assert server.stop() == 0
        assert b"Traceback" not in server.log()
