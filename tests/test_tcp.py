"""TCPServer and Connection (reactor.chapter._tcp) on a Reactor driven with
run_once() from the test, over real loopback TCP sockets.

The clients are non-blocking sockets that the test reads and writes between
iterations of the loop, so nothing here depends on thread scheduling.  The
facts [T1]..[T5] referred to are listed at the top of reactor/_tcp.py.
"""

import logging
import os
import resource
import socket
import struct
import time

import pytest

import reactor
from reactor import EVENT_READ, EVENT_WRITE, Connection, Reactor, TCPServer

WAIT = 5.0  # "promptly": a bound against hanging, not a timing


def _close_after_a_few_turns(r):
    # connection_lost() (and the socket's close) runs in an iteration of
    # its own, as in asyncio: give closing connections those iterations.
    for _ in range(5):
        r.run_once(0)
    r.close()


@pytest.fixture
def loop(backend):
    r = Reactor(backend.ours())
    yield r
    _close_after_a_few_turns(r)


@pytest.fixture
def epoll_loop():
    r = Reactor()
    yield r
    _close_after_a_few_turns(r)


@pytest.fixture
def clients():
    """Factory of non-blocking client sockets connected to an address; all
    closed after the test."""
    made = []

    def connect(address, rcvbuf=None):
        s = socket.socket()
        made.append(s)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(WAIT)
        s.connect(address)
        s.setblocking(False)
        return s

    yield connect
    for s in made:
        s.close()


@pytest.fixture
def servers():
    made = []

    def make(*args, **kwargs):
        server = TCPServer(*args, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()
        for connection in list(server.connections):
            connection.abort()


def pump(r, until, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        r.run_once(0.005)


def run_for(r, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r.run_once(min(0.005, max(deadline - time.monotonic(), 0)))


def try_recv(sock, n=1 << 20):
    """bytes read (b"" on EOF), or None when nothing is available."""
    try:
        return sock.recv(n)
    except BlockingIOError:
        return None


def exchange(r, sock, data, expect=None, timeout=WAIT):
    """Send `data` from a client and read back len(expect) bytes (default:
    the data itself), driving the loop meanwhile."""
    expect = data if expect is None else expect
    view = memoryview(data)
    got = bytearray()
    deadline = time.monotonic() + timeout
    while view or len(got) < len(expect):
        assert time.monotonic() < deadline, f"exchange timed out: got {len(got)} of {len(expect)}"
        if view:
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                pass
        chunk = try_recv(sock)
        assert chunk != b"", "EOF in the middle of an exchange"
        if chunk:
            got += chunk
        r.run_once(0.002)
    assert bytes(got) == expect
    return bytes(got)


def read_until_eof(r, sock, timeout=WAIT):
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"no EOF: got {len(got)} bytes"
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            r.run_once(0.002)
            continue
        if not chunk:
            return bytes(got)
        got += chunk


def sees_eof_or_reset(sock):
    try:
        return sock.recv(100) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def pattern(n, seed=0):
    """n bytes that differ from any shifted copy (catches lost/reordered data)."""
    block = b"".join(struct.pack(">I", i + seed * 1_000_003) for i in range(16384))
    reps = n // len(block) + 1
    return (block * reps)[:n]


def only_connection(server):
    assert len(server.connections) == 1
    return next(iter(server.connections))


def interest(r, conn):
    return r.selector.get_key(conn.sock).events


# --------------------------------------------------------------------------
# Basics


def test_public_names():
    assert reactor.TCPServer is TCPServer
    assert reactor.Connection is Connection


def test_arguments_are_validated(epoll_loop):
    with pytest.raises(TypeError):
        TCPServer(epoll_loop)
    with pytest.raises(ValueError):
        TCPServer(epoll_loop, on_data=Connection.write, max_outbound=0)
    with pytest.raises(ValueError):
        TCPServer(epoll_loop, on_data=Connection.write, idle_timeout=0)


def test_echo(loop, servers, clients):
    server = servers(loop, on_data=Connection.write)
    host, port = server.address[:2]
    assert host == "127.0.0.1" and port > 0
    c = clients(server.address)
    for msg in (b"hello", b"x", b"\x00\xff" * 100):
        exchange(loop, c, msg)
    big = pattern(3 << 20)
    exchange(loop, c, big)  # partial reads and writes on both sides


def test_connection_callbacks(loop, servers, clients):
    log = []
    server = servers(
        loop,
        on_data=lambda conn, data: log.append(("data", data)),
        on_connect=lambda conn: log.append(("connect", conn.address)),
        on_eof=lambda conn: log.append(("eof",)),
        on_close=lambda conn: log.append(("close", conn.closed)),
    )
    c = clients(server.address)
    pump(loop, lambda: server.connections, what="accept")
    conn = only_connection(server)
    assert conn.address == c.getsockname()
    assert conn.server is server and not conn.closed and conn.pending == 0
    c.send(b"abc")
    pump(loop, lambda: len(log) >= 2)
    c.shutdown(socket.SHUT_WR)
    pump(loop, lambda: not server.connections, what="close after EOF")
    assert log == [("connect", c.getsockname()), ("data", b"abc"), ("eof",), ("close", True)]
    assert read_until_eof(loop, c) == b""


def test_on_data_exception_is_reported_and_aborts_that_connection(epoll_loop, servers, clients):
    errors = []
    epoll_loop.handle_exception = lambda exc, cb: errors.append((exc, cb))

    def on_data(conn, data):
        if data == b"boom":
            raise ValueError("boom")
        conn.write(data)

    server = servers(epoll_loop, on_data=on_data)
    c = clients(server.address)
    other = clients(server.address)
    exchange(epoll_loop, other, b"before")
    c.send(b"boom")
    pump(epoll_loop, lambda: errors)
    assert isinstance(errors[0][0], ValueError)
    assert "data_received" in errors[0][1].__qualname__
    pump(epoll_loop, lambda: sees_eof_or_reset(c), what="the faulty connection to end")
    exchange(epoll_loop, other, b"still served")


def test_close_sends_what_is_queued_and_write_after_close_is_ignored(epoll_loop, servers, clients):
    # Issue 9: close() used to drop the queue (3,919,872 of 4,194,342 bytes).
    big = pattern(4_194_342)
    server = servers(epoll_loop, on_data=Connection.write)
    c = clients(server.address)
    pump(epoll_loop, lambda: server.connections)
    conn = only_connection(server)
    conn.write(big)
    conn.close()
    assert conn.closed
    conn.write(b"ignored")  # no error
    conn.close()  # idempotent
    assert read_until_eof(epoll_loop, c, timeout=30) == big
    pump(epoll_loop, lambda: conn not in server.connections)


def test_abort_drops_what_is_queued(epoll_loop, servers, clients):
    closed = []
    server = servers(epoll_loop, on_data=Connection.write, on_close=closed.append)
    c = clients(server.address)
    pump(epoll_loop, lambda: server.connections)
    conn = only_connection(server)
    conn.write(pattern(8 << 20))
    conn.abort()
    assert conn.closed and conn.pending == 0
    pump(epoll_loop, lambda: closed == [conn])
    got = b""
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline
        try:
            chunk = c.recv(1 << 20)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    assert len(got) < 8 << 20


def test_server_close_closes_everything(epoll_loop, clients):
    server = TCPServer(epoll_loop, on_data=Connection.write, idle_timeout=10)
    cs = [clients(server.address) for _ in range(3)]
    pump(epoll_loop, lambda: len(server.connections) == 3)
    address = server.address
    server.close()
    server.close()  # idempotent
    pump(epoll_loop, lambda: not server.connections)
    for c in cs:
        assert read_until_eof(epoll_loop, c) == b""
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1).close()


# --------------------------------------------------------------------------
# Partial writes [T2]


def test_partial_writes_are_buffered_and_drained(loop, servers, clients):
    payload = pattern(6 << 20)
    tail = b"--the end--"

    def on_data(conn, data):
        conn.write(payload)
        conn.write(tail)  # queued behind the rest, in order

    server = servers(loop, on_data=on_data, max_outbound=64 << 20)
    c = clients(server.address)
    c.send(b"go")
    pump(
        loop,
        lambda: server.connections and only_connection(server).pending > 0,
        what="a partial write",
    )
    conn = only_connection(server)
    run_for(loop, 0.05)  # the client reads nothing: nothing drains
    pending = conn.pending
    assert 0 < pending <= len(payload) + len(tail)
    assert interest(loop, conn) == EVENT_READ | EVENT_WRITE
    got = bytearray()
    deadline = time.monotonic() + WAIT
    while len(got) < len(payload) + len(tail):
        assert time.monotonic() < deadline
        chunk = try_recv(c)
        assert chunk != b""
        if chunk:
            got += chunk
        loop.run_once(0.002)
    assert bytes(got) == payload + tail
    pump(loop, lambda: conn.pending == 0)
    # Nothing owed: no write interest (a writable socket would spin).
    assert interest(loop, conn) == EVENT_READ
    assert not conn.closed
    exchange(loop, c, b"go", expect=payload + tail)  # and it serves again


def test_no_write_interest_while_nothing_is_owed(epoll_loop, servers, clients):
    server = servers(epoll_loop, on_data=Connection.write)
    c = clients(server.address)
    exchange(epoll_loop, c, b"small")
    conn = only_connection(server)
    assert conn.pending == 0
    assert interest(epoll_loop, conn) == EVENT_READ


# --------------------------------------------------------------------------
# The outbound cap [T3]


def test_outbound_cap_stops_reading_from_a_peer_that_does_not_read(loop, servers, clients):
    cap, read_size = 64 << 10, 65536
    server = servers(loop, on_data=Connection.write, max_outbound=cap, read_size=read_size)
    hog = clients(server.address)
    other = clients(server.address)
    pump(loop, lambda: len(server.connections) == 2)
    data = pattern(256 << 20, seed=7)
    sent = 0
    max_pending = 0
    stalled_rounds = 0
    hog_conn = None
    # Send until our sends stall for a while: the server has stopped reading.
    while stalled_rounds < 40:
        assert sent < len(data), "the server kept reading from a peer that never reads"
        try:
            n = hog.send(data[sent : sent + (1 << 20)])
        except BlockingIOError:
            n = 0
        sent += n
        stalled_rounds = 0 if n else stalled_rounds + 1
        loop.run_once(0.001)
        for conn in server.connections:
            max_pending = max(max_pending, conn.pending)
            if conn.pending:
                hog_conn = conn
    assert hog_conn is not None
    assert max_pending <= cap + read_size
    assert hog_conn.pending > cap // 2  # it is the cap, not a drain, that stopped us
    assert not interest(loop, hog_conn) & EVENT_READ  # stopped reading
    # Another client is still served meanwhile.
    exchange(loop, other, b"are you there?")
    # The hog reads: everything it sent comes back, in order, and the server
    # reads from it again.
    got = bytearray()
    deadline = time.monotonic() + WAIT * 2
    while len(got) < sent:
        assert time.monotonic() < deadline, f"got {len(got)} of {sent}"
        chunk = try_recv(hog, 4 << 20)
        assert chunk != b""
        if chunk:
            got += chunk
        loop.run_once(0.001)
        for conn in server.connections:
            max_pending = max(max_pending, conn.pending)
    assert got == data[:sent]
    assert max_pending <= cap + read_size
    assert hog_conn.pending == 0 and interest(loop, hog_conn) == EVENT_READ
    exchange(loop, hog, b"reading again")


def test_reading_resumes_at_a_quarter_of_max_outbound(epoll_loop, servers, clients):
    # [C1] said "half" while the limits it sets resume at a quarter.
    server = servers(epoll_loop, on_data=Connection.write, max_outbound=1 << 20)
    clients(server.address)
    pump(epoll_loop, lambda: server.connections)
    transport = only_connection(server).transport
    assert transport.get_write_buffer_limits() == (1 << 18, 1 << 20)


# --------------------------------------------------------------------------
# EOF and resets [T4]


def test_half_close_delivers_everything_then_closes(loop, servers, clients):
    eofs = []
    server = servers(loop, on_data=Connection.write, on_eof=eofs.append)
    c = clients(server.address)
    data = pattern(2 << 20, seed=3)
    view = memoryview(data)
    got = bytearray()
    # Send it all, reading only what is needed to make progress.
    while view:
        try:
            view = view[c.send(view) :]
        except BlockingIOError:
            chunk = try_recv(c)
            if chunk:
                got += chunk
        loop.run_once(0.001)
    c.shutdown(socket.SHUT_WR)
    got += read_until_eof(loop, c)
    assert bytes(got) == data
    assert not server.connections
    assert len(eofs) == 1


def test_on_eof_called_once_while_flushing_after_eof(epoll_loop, servers, clients):
    # After the peer's FIN the server still owes data; as it drains below
    # half the cap, reading must not resume (there is nothing left to read
    # but the FIN again).
    eofs = []
    conns = []

    def on_connect(conn):
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conns.append(conn)

    reply = pattern(60000, seed=5)
    server = servers(
        epoll_loop,
        on_data=lambda conn, data: conn.write(reply),
        on_connect=on_connect,
        on_eof=eofs.append,
        max_outbound=64 << 10,
    )
    c = clients(server.address, rcvbuf=4096)
    c.send(b"go")
    c.shutdown(socket.SHUT_WR)
    pump(epoll_loop, lambda: eofs, what="EOF")
    assert conns[0].pending > 0  # still owed when the FIN was read
    got = bytearray()
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline
        chunk = try_recv(c, 2048)
        if chunk == b"":
            break
        if chunk:
            got += chunk
        epoll_loop.run_once(0.002)
    assert bytes(got) == reply
    assert conns[0].closed
    assert len(eofs) == 1, f"on_eof called {len(eofs)} times"


def _linger_reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("owed", [False, True], ids=["idle", "owed-data"])
def test_connection_reset_closes_quietly(loop, servers, clients, owed):
    errors = []
    loop.handle_exception = lambda exc, cb: errors.append(exc)
    closed = []

    def on_data(conn, data):
        if data == b"flood":
            conn.write(pattern(8 << 20))
        else:
            conn.write(data)

    server = servers(loop, on_data=on_data, on_close=closed.append, max_outbound=64 << 20)
    victim = clients(server.address)
    other = clients(server.address)
    exchange(loop, other, b"before")
    exchange(loop, victim, b"before")
    if owed:
        victim.send(b"flood")
        pump(loop, lambda: any(c.pending for c in server.connections), what="owed data")
    _linger_reset(victim)  # RST
    pump(loop, lambda: len(server.connections) == 1, what="the reset connection to close")
    assert len(closed) == 1 and closed[0].closed
    exchange(loop, other, b"after")
    assert errors == []


def test_reset_while_server_writes(epoll_loop, servers, clients):
    # Writing to a reset peer: EPIPE/ECONNRESET close the connection.
    errors = []
    epoll_loop.handle_exception = lambda exc, cb: errors.append(exc)
    server = servers(epoll_loop, on_data=Connection.write)
    c = clients(server.address)
    exchange(epoll_loop, c, b"x")
    conn = only_connection(server)
    _linger_reset(c)
    time.sleep(0.01)
    conn.write(b"to nobody" * 1000)
    conn.write(b"again")
    pump(epoll_loop, lambda: conn.closed)
    assert errors == []


# --------------------------------------------------------------------------
# Limits


def test_max_connections_refuses_extras(loop, servers, clients):
    server = servers(loop, on_data=Connection.write, max_connections=3)
    accepted = [clients(server.address) for _ in range(3)]
    pump(loop, lambda: len(server.connections) == 3)
    extras = [clients(server.address) for _ in range(2)]
    pump(loop, lambda: server.refused == 2, what="refusals")
    assert len(server.connections) == 3
    for c in extras:
        pump(loop, lambda c=c: sees_eof_or_reset(c), what="the refused client to be closed")
    for i, c in enumerate(accepted):
        exchange(loop, c, b"still served %d" % i)
    # A slot freed is a slot available again.
    accepted[0].close()
    pump(loop, lambda: len(server.connections) == 2)
    late = clients(server.address)
    exchange(loop, late, b"late")
    assert server.refused == 2


def test_idle_timeout_closes_silent_connections_only(epoll_loop, servers, clients):
    idle = 0.4
    server = servers(epoll_loop, on_data=Connection.write, idle_timeout=idle)
    start = time.monotonic()
    silent = clients(server.address)
    chatty = clients(server.address)
    closed_at = None
    while time.monotonic() - start < idle * 2.5:
        exchange(epoll_loop, chatty, b"ping")
        if closed_at is None and sees_eof_or_reset(silent):
            closed_at = time.monotonic() - start
        run_for(epoll_loop, 0.03)
    assert closed_at is not None, "the silent connection was not closed"
    assert idle <= closed_at <= idle * 1.5 + 0.05
    assert len(server.connections) == 1
    exchange(epoll_loop, chatty, b"still open")


def test_many_accepts_per_readiness_event(loop, servers, clients):
    server = servers(loop, on_data=Connection.write)
    cs = [clients(server.address) for _ in range(50)]
    time.sleep(0.05)  # all 50 are in the accept queue
    loop.run_once(WAIT)  # one readiness event
    assert server.accepted == 50
    loop.run_once(0)  # connection_made() runs an iteration later, as in asyncio
    assert len(server.connections) == 50
    for i, c in enumerate(cs):
        c.send(b"n%d" % i)
    for i, c in enumerate(cs):
        exchange(loop, c, b"", expect=b"n%d" % i)


def test_accepts_per_event_bounds_one_iteration(epoll_loop, servers, clients):
    server = servers(epoll_loop, on_data=Connection.write, accepts_per_event=10)
    cs = [clients(server.address) for _ in range(35)]
    time.sleep(0.05)
    counts = []
    for _ in range(4):
        epoll_loop.run_once(WAIT)
        counts.append(server.accepted)
    assert counts == [10, 20, 30, 35]
    for c in cs:
        exchange(epoll_loop, c, b"ok")


def _lowest_free_fd():
    fd = os.dup(0)
    os.close(fd)
    return fd


def test_accept_out_of_fds_pauses_instead_of_spinning(epoll_loop, servers, clients, caplog):
    # [T5] accept() failing with EMFILE: the listener stays readable, so the
    # server must stop watching it for a while instead of spinning.
    server = servers(epoll_loop, on_data=Connection.write)
    first = clients(server.address)
    pump(epoll_loop, lambda: server.connections)
    waiting = clients(server.address)  # queued, not yet accepted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd(), hard))
    try:
        with caplog.at_level(logging.WARNING, logger="reactor"):
            epoll_loop.run_once(WAIT)  # accept() fails with EMFILE
            assert "accept()" in caplog.text and "out of resources" in caplog.text
            assert "Too many open files" in caplog.text
            assert len(server.connections) == 1
            # Paused: the loop blocks for its timeout instead of returning at
            # once for the still-readable listener.
            start = time.monotonic()
            epoll_loop.run_once(0.03)
            assert time.monotonic() - start >= 0.03
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pump(epoll_loop, lambda: len(server.connections) == 2, what="accepts to resume")
    exchange(epoll_loop, waiting, b"accepted at last")
    exchange(epoll_loop, first, b"and the first one")


# --------------------------------------------------------------------------
# max_connections over TLS


@pytest.fixture(scope="module")
def tls_contexts():
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def tls_client(r, address, client_context, timeout=WAIT):
    """A TLS client connected through the Reactor: the Connecting handle and
    the bytes it received (joined as they come)."""
    import asyncio

    got = bytearray()
    errors = []

    class Client(asyncio.Protocol):
        def data_received(self, data):
            got.extend(data)

    handle = r.create_connection(
        Client, *address, ssl=client_context, server_hostname="localhost", on_error=errors.append
    )
    pump(r, lambda: handle.transport is not None or errors, timeout, what="the TLS client")
    assert errors == []
    return handle, got


def test_tls_slots_leak_under_max_connections(epoll_loop, servers, clients, tls_contexts):
    # [C3] A handshake that fails (here: plain `nc -z` probes that connect
    # and close) never reaches the application protocol; its slot must
    # still come back, or N probes lock everyone out for good.
    server_context, client_context = tls_contexts
    epoll_loop.handle_exception = lambda exc, where=None: None  # the failed handshakes
    server = servers(epoll_loop, on_data=Connection.write, max_connections=2, ssl=server_context)
    for _ in range(4):
        clients(server.address).close()
    run_for(epoll_loop, 0.1)
    assert server._admitted == 0
    refused = server.refused  # probes past the two slots, while they were taken
    handle, got = tls_client(epoll_loop, server.address, client_context)
    handle.transport.write(b"served after the probes")
    pump(epoll_loop, lambda: bytes(got) == b"served after the probes", what="the echo")
    assert server.refused == refused
    handle.transport.abort()


def test_tls_slot_of_a_timed_out_handshake_comes_back(epoll_loop, servers, clients, tls_contexts):
    server_context, client_context = tls_contexts
    epoll_loop.handle_exception = lambda exc, where=None: None
    server = servers(epoll_loop, on_data=Connection.write, max_connections=1, ssl=server_context)
    server.server._ssl_handshake_timeout = 0.05
    silent = clients(server.address)  # connects, never says hello
    run_for(epoll_loop, 0.2)
    assert sees_eof_or_reset(silent)
    handle, got = tls_client(epoll_loop, server.address, client_context)
    handle.transport.write(b"x")
    pump(epoll_loop, lambda: got == b"x", what="the echo")
    handle.transport.abort()


@pytest.mark.parametrize("how", ["TCPServer.close", "close_clients", "abort_clients"])
def test_tls_handshaking_connections_are_closed_with_the_server(
    epoll_loop, servers, clients, tls_contexts, how
):
    server_context, _ = tls_contexts
    errors = []
    epoll_loop.handle_exception = lambda exc, where=None: errors.append((exc, where))
    server = servers(epoll_loop, on_data=Connection.write, max_connections=5, ssl=server_context)
    silent = clients(server.address)  # still in its handshake
    run_for(epoll_loop, 0.05)
    assert not server.connections
    if how == "TCPServer.close":
        server.close()
    else:
        getattr(server.server, how)()
    pump(epoll_loop, lambda: sees_eof_or_reset(silent), what="the handshaking client closed")
    run_for(epoll_loop, 0.02)
    assert errors == []  # our own close is no handshake failure
    assert server._admitted == 0
