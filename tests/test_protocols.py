"""asyncio's protocols on the Reactor, each case run on the Reactor over every
selector and on asyncio's own loop as the reference, with the same protocol
classes (tests/_loops.py).  What a protocol observes must be the same.
"""

import asyncio
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from _loops import LOOP_KINDS, Recorder, closed_port, make_driver, skip_asyncio_310

BIG = 4 * 1024 * 1024 + 70  # the 4,194,342 bytes


@pytest.fixture(params=LOOP_KINDS)
def drv(request):
    driver = make_driver(request.param)
    yield driver
    driver.close()


class Echo(asyncio.Protocol):
    instances = None

    def connection_made(self, transport):
        self.transport = transport
        if self.instances is not None:
            self.instances.append(self)

    def data_received(self, data):
        self.transport.write(data)


class Closer(Recorder):
    """Writes `payload` once connected, then closes."""

    payload = b""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(self.payload)
        transport.close()


def pattern(n, seed=0):
    """n bytes that reveal a lost, duplicated or reordered chunk."""
    block = bytes((i * 7 + seed) % 251 for i in range(251))
    return (block * (n // 251 + 1))[:n]


def serve(drv, factory, **options):
    server = drv.server(factory, **options)
    return server, drv.port_of(server)


# -- streams -----------------------------------------------------------------------


def test_echo_round_trips_every_byte(drv):
    server, port = serve(drv, Echo)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    sent = b""
    for i in range(50):
        chunk = pattern(1 + 997 * i % 20000, seed=i)
        client.transport.write(chunk)
        sent += chunk
        drv.run_until(lambda: len(client.protocol.received) == len(sent), what="echo")
    assert client.protocol.received == sent
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)
    assert client.protocol.kinds() == ["made", "data", "lost"]
    assert client.protocol.lost is None
    assert drv.errors == []


def test_write_then_close_delivers_every_byte(drv):
    class BigCloser(Closer):
        payload = pattern(BIG)

    server_protocols = []

    def factory():
        protocol = BigCloser()
        server_protocols.append(protocol)
        return protocol

    server, port = serve(drv, factory)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.protocol is not None and client.protocol.lost_count, timeout=30)
    assert len(client.protocol.received) == BIG
    assert client.protocol.received == BigCloser.payload
    assert client.protocol.kinds() == ["made", "data", "eof", "lost"]
    drv.run_until(lambda: server_protocols and server_protocols[0].lost_count)
    assert server_protocols[0].events[-1] == ("lost", None)
    assert server_protocols[0].lost_count == 1


def test_half_close_keeps_the_connection_when_eof_received_says_so(drv):
    class Responder(Recorder):
        eof_result = True

        def eof_received(self):
            result = super().eof_received()
            self.transport.write(b"answer to " + self.received)
            self.transport.close()
            return result

    server_protocols = []
    server, port = serve(drv, lambda: server_protocols.append(Responder()) or server_protocols[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    client.transport.write(b"question")
    client.transport.write_eof()
    assert client.transport.can_write_eof()
    with pytest.raises(RuntimeError, match="write_eof"):
        client.transport.write(b"more")
    drv.run_until(lambda: client.protocol.lost_count)
    assert client.protocol.received == b"answer to question"
    assert client.protocol.kinds() == ["made", "data", "eof", "lost"]
    assert server_protocols[0].kinds() == ["made", "data", "eof", "lost"]


def test_eof_received_false_closes_the_transport(drv):
    server_protocols = []
    server, port = serve(drv, lambda: server_protocols.append(Recorder()) or server_protocols[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    client.transport.write_eof()
    drv.run_until(lambda: client.protocol.lost_count and server_protocols[0].lost_count)
    assert server_protocols[0].kinds() == ["made", "eof", "lost"]
    assert client.protocol.kinds() == ["made", "eof", "lost"]
    assert server_protocols[0].transport.is_closing()


def test_write_eof_sends_the_queue_first(drv):
    class EofAfterBig(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(pattern(BIG))
            transport.write_eof()
            transport.write_eof()  # twice is harmless

    server, port = serve(drv, EofAfterBig)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(
        lambda: client.protocol is not None and ("eof",) in client.protocol.events, timeout=30
    )
    assert client.protocol.received == pattern(BIG)
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_write_argument_checks(drv):
    server, port = serve(drv, Echo)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    transport = client.transport
    with pytest.raises(TypeError, match="bytes-like object, not 'str'"):
        transport.write("text")
    transport.write(b"")
    transport.write(bytearray(b"ab"))
    transport.write(memoryview(b"cd"))
    transport.writelines([b"e", bytearray(b"f"), memoryview(b"g")])
    drv.run_until(lambda: client.protocol.received == b"abcdefg")
    with pytest.raises(ValueError, match="must be >= low"):
        transport.set_write_buffer_limits(high=10, low=20)
    transport.set_write_buffer_limits(high=1000)
    assert transport.get_write_buffer_limits() == (250, 1000)
    transport.set_write_buffer_limits(low=100)
    assert transport.get_write_buffer_limits() == (100, 400)
    transport.close()
    drv.run_until(lambda: client.protocol.lost_count)
    transport.write(b"after the end")  # ignored, as asyncio
    assert transport.is_closing()


def test_flow_control_pauses_and_resumes_the_writer(drv):
    skip_asyncio_310(drv, "starts reading after a pause_reading() in connection_made()")

    class Flooder(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.set_write_buffer_limits(high=64 * 1024)
            self.sent = 0
            self.flood()

        def flood(self):
            while ("pause_writing",) not in self.events[-1:] and self.sent < 64 << 20:
                self.transport.write(pattern(16384, seed=self.sent % 251))
                self.sent += 16384

        def resume_writing(self):
            super().resume_writing()
            self.transport.close()

    flooders = []
    server, port = serve(drv, lambda: flooders.append(Flooder()) or flooders[-1])

    class SlowReader(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    client = drv.connect(SlowReader, "127.0.0.1", port)
    drv.run_until(lambda: flooders and ("pause_writing",) in flooders[0].events)
    flooder = flooders[0]
    assert flooder.transport.get_write_buffer_size() > 64 * 1024
    assert not client.protocol.chunks
    assert not client.protocol.transport.is_reading()
    client.protocol.transport.resume_reading()
    assert client.protocol.transport.is_reading()
    drv.run_until(lambda: client.protocol.lost_count, timeout=30)
    assert flooder.kinds() == ["made", "pause_writing", "resume_writing", "lost"]
    assert len(client.protocol.received) == flooder.sent


def test_pause_reading_holds_data_until_resumed(drv):
    skip_asyncio_310(drv, "starts reading after a pause_reading() in connection_made()")

    class Pauser(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()
            transport.pause_reading()  # idempotent

    servers = []
    server, port = serve(drv, lambda: servers.append(Pauser()) or servers[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: servers and client.transport is not None)
    client.transport.write(b"held")
    drv.run_for(0.1)
    assert servers[0].chunks == []
    assert not servers[0].transport.is_reading()
    servers[0].transport.resume_reading()
    drv.run_until(lambda: servers[0].received == b"held")
    client.transport.close()
    drv.run_until(lambda: servers[0].lost_count)


def test_abort_drops_the_queue_and_loses_the_connection_once(drv):
    class Aborter(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(pattern(BIG))
            transport.abort()
            transport.abort()
            transport.close()

    servers = []
    server, port = serve(drv, lambda: servers.append(Aborter()) or servers[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: servers and servers[0].lost_count and client.protocol.lost_count)
    drv.run_for(0.05)
    assert servers[0].lost_count == 1
    assert servers[0].lost is None
    assert len(client.protocol.received) < BIG


def test_extra_info(drv):
    server, port = serve(drv, Echo)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    transport = client.transport
    assert transport.get_extra_info("peername") == ("127.0.0.1", port)
    assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
    sock = transport.get_extra_info("socket")
    assert sock.fileno() >= 0
    assert transport.get_extra_info("nothing", "default") == "default"
    assert transport.get_protocol() is client.protocol
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_buffered_protocol_reads_into_its_buffer(drv):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer = bytearray(1000)
            self.data = bytearray()
            self.sizes = []
            self.lost = False

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            self.sizes.append(sizehint)
            return memoryview(self.buffer)[:700]

        def buffer_updated(self, nbytes):
            self.data += self.buffer[:nbytes]

        def eof_received(self):
            self.transport.write(bytes(self.data))
            return True

        def connection_lost(self, exc):
            self.lost = True

    servers = []
    server, port = serve(drv, lambda: servers.append(Buffered()) or servers[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    client.transport.write(pattern(100_000))
    client.transport.write_eof()
    drv.run_until(lambda: len(client.protocol.received) == 100_000)
    assert client.protocol.received == pattern(100_000)
    assert all(hint == -1 for hint in servers[0].sizes)
    servers[0].transport.close()
    drv.run_until(lambda: client.protocol.lost_count and servers[0].lost)


class CloseOnResume(Recorder):
    """Writes `payload` with limits that resume it only once its buffer is
    empty, and closes from resume_writing()."""

    payload = b""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=1, low=0)
        transport.write(self.payload)

    def resume_writing(self):
        super().resume_writing()
        self.transport.close()


# asyncio's own socket transport runs its connection_lost() path twice after
# a close() from resume_writing() (AttributeError from _call_connection_lost's
# self._sock.close()): seen on every Python here, 3.10.13 to 3.13.0 (later
# releases are said to guard it: not checked here).
ASYNCIO_RUNS_CONNECTION_LOST_TWICE = sys.version_info < (3, 13, 1)


def skip_asyncio_311_connection_lost_twice(drv):
    if drv.kind == "asyncio" and ASYNCIO_RUNS_CONNECTION_LOST_TWICE:
        pytest.skip(
            "asyncio up to 3.13.0 has the bug (connection_lost() path run "
            "twice, then None.connection_lost or None.close)"
        )


def test_connection_lost_path_runs_twice(drv):
    # close() from resume_writing() once the buffer drained: the write-ready
    # callback went on to run connection_lost() itself, then the one close()
    # scheduled ran too, and called None.connection_lost.
    skip_asyncio_311_connection_lost_twice(drv)

    class Writer(CloseOnResume):
        payload = pattern(BIG)

    servers = []
    _, port = serve(drv, lambda: servers.append(Writer()) or servers[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.protocol is not None and client.protocol.lost_count, timeout=30)
    drv.run_until(lambda: servers[0].lost_count)
    drv.run_for(0.05)
    assert client.protocol.received == pattern(BIG)
    assert servers[0].kinds() == ["made", "pause_writing", "resume_writing", "lost"]
    assert servers[0].lost is None
    assert drv.errors == []


# -- connecting --------------------------------------------------------------------


def test_connect_refused_reports_the_error(drv):
    client = drv.connect(Recorder, "127.0.0.1", closed_port())
    drv.run_until(lambda: client.error is not None)
    assert isinstance(client.error, ConnectionRefusedError)
    assert client.transport is None


def test_every_resolved_address_is_tried_in_order(drv, monkeypatch):
    server, port = serve(drv, Echo)
    dead = closed_port()
    real = socket.getaddrinfo

    def fake(host, port_, *args, **kwargs):
        if host == "two.example":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    client = drv.connect(Recorder, "two.example", 80)
    drv.run_until(
        lambda: (
            client.error is not None or (client.protocol is not None and client.protocol.events)
        )
    )
    assert client.error is None
    assert client.transport.get_extra_info("peername") == ("127.0.0.1", port)
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_all_addresses_failing_gives_asyncio_multiple_exceptions(drv, monkeypatch):
    dead1, dead2 = closed_port(), closed_port()
    real = socket.getaddrinfo

    def fake(host, port_, *args, **kwargs):
        if host == "two.example":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead1)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", dead2)),
            ]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    client = drv.connect(Recorder, "two.example", 80)
    drv.run_until(lambda: client.error is not None)
    assert type(client.error) is OSError
    assert str(client.error).startswith("Multiple exceptions: ")
    assert str(dead1) in str(client.error) and str(dead2) in str(client.error)


def test_name_that_does_not_resolve(drv):
    client = drv.connect(Recorder, "no-such-host.invalid", 80)
    drv.run_until(lambda: client.error is not None)
    assert isinstance(client.error, socket.gaierror)


def test_cancel_before_connected_calls_nothing(drv):
    made = []

    class Watch(Recorder):
        def connection_made(self, transport):
            made.append(transport)
            transport.close()

    _, port = serve(drv, Echo)
    numeric = drv.connect(Watch, "127.0.0.1", port)
    named = drv.connect(Watch, "localhost", port)
    drv.cancel(numeric)
    drv.cancel(named)
    drv.run_for(0.2)
    assert made == []
    assert numeric.error is None and named.error is None


def stalled_listener():
    """A loopback listener whose accept queue is full (backlog 0, one
    connection queued, never accepted): the next connect() stays in
    progress, its SYNs dropped.  Returns (listener, filler)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)
    return listener, filler


def test_cancel_while_connecting_calls_nothing(drv):
    listener, filler = stalled_listener()
    with listener, filler:
        client = drv.connect(Recorder, *listener.getsockname())
        drv.run_for(0.2)
        assert client.transport is None and client.error is None  # still connecting
        drv.cancel(client)
        drv.run_for(0.1)
        assert client.transport is None and client.error is None
        if drv.api != "asyncio":
            assert client.handle.done() and client.handle.cancelled()
            assert client.handle.protocol is None


def test_cancel_between_the_connect_and_connection_made(drv):
    # The TCP connect is done and connection_made() is queued: asyncio's
    # task, cancelled now, closes the transport it made (the protocol sees
    # connection_made() then connection_lost(None)); the Reactor's handle
    # is done() from the connect on, so cancel() has no effect and the
    # connection is the caller's, open.
    _, port = serve(drv, Echo)
    client = drv.connect(Recorder, "127.0.0.1", port)
    if drv.api == "asyncio":
        made = []

        def factory():
            made.append(Recorder())
            return made[-1]

        client.handle.cancel()
        client = drv.connect(factory, "127.0.0.1", port)
        while not made:
            drv.loop._run_once()  # one iteration at a time, as the Reactor's run_once()
        assert made[0].events == []  # connection_made() is queued
        drv.cancel(client)
        drv.run_until(lambda: made[0].lost_count)
        assert client.handle.cancelled() and client.transport is None
        assert made[0].events == [("made",), ("lost", None)]
        return
    while client.transport is None:
        drv.loop.run_once(0.01)
    assert client.handle.done() and client.protocol.events == []  # made is queued
    drv.cancel(client)
    assert not client.handle.cancelled()
    drv.run_until(lambda: client.protocol.events == [("made",)])
    client.transport.write(b"still mine")
    drv.run_until(lambda: client.protocol.received == b"still mine")
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)
    assert client.protocol.kinds() == ["made", "data", "lost"]


def test_local_addr_binds_the_client(drv):
    server, port = serve(drv, Echo)
    client = drv.connect(Recorder, "127.0.0.1", port, local_addr=("127.0.0.1", 0))
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    assert client.transport.get_extra_info("sockname")[0] == "127.0.0.1"
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_adopted_sockets(drv):
    listener = socket.create_server(("127.0.0.1", 0))
    drv.server(Echo, host=None, port=None, sock=listener)
    port = listener.getsockname()[1]
    conn = socket.create_connection(("127.0.0.1", port))
    client = drv.connect(Recorder, host=None, port=None, sock=conn)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    client.transport.write(b"adopted")
    drv.run_until(lambda: client.protocol.received == b"adopted")
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_setup_argument_errors(drv):
    spare = socket.socket()
    with spare, pytest.raises(ValueError):
        drv.server(Echo, "127.0.0.1", 0, sock=spare)
    with pytest.raises(ValueError):
        drv.server(Echo, host=None, port=None)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with udp, pytest.raises(ValueError, match="Stream Socket was expected"):
        drv.server(Echo, host=None, port=None, sock=udp)
    with pytest.raises(TypeError):
        drv.server(Echo, "127.0.0.1", 0, ssl=True)
    with pytest.raises(ValueError, match="ssl_handshake_timeout"):
        drv.server(Echo, "127.0.0.1", 0, ssl_handshake_timeout=1)


def test_server_listens_on_every_interface_when_host_is_none(drv):
    server = drv.server(Echo, None, 0)
    ports = {sock.family: sock.getsockname()[1] for sock in server.sockets}
    if drv.api == "asyncio":
        assert set(ports) == {socket.AF_INET, socket.AF_INET6}  # one socket per family
    else:
        assert set(ports) == {socket.AF_INET6}  # one dual-stack socket (reactor.net._servers [V2])
    # IPv4 reaches the IPv4 socket or, dual-stack, the IPv6 one.
    for host, port in (
        ("127.0.0.1", ports.get(socket.AF_INET, ports[socket.AF_INET6])),
        ("::1", ports[socket.AF_INET6]),
    ):
        client = drv.connect(Recorder, host, port)
        drv.run_until(
            lambda: (
                client.error is not None
                or (client.transport is not None and client.protocol.events)
            )
        )
        assert client.error is None, (host, client.error)
        client.transport.write(b"via " + host.encode())
        drv.run_until(lambda: client.protocol.received == b"via " + host.encode())
        client.transport.close()
        drv.run_until(lambda: client.protocol.lost_count)


def test_server_close_stops_listening_but_keeps_connections(drv):
    server, port = serve(drv, Echo)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    assert server.is_serving()
    server.close()
    assert not server.is_serving()
    assert server.sockets == () or server.sockets == []
    client.transport.write(b"still here")
    drv.run_until(lambda: client.protocol.received == b"still here")
    late = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: late.error is not None)
    assert isinstance(late.error, ConnectionRefusedError)
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_backlog_0_accepts_nothing_per_event(drv):
    # accepts per readiness event = backlog: with backlog=0 nothing was
    # accepted, and the level-triggered listener, still readable, spun.
    if drv.kind == "asyncio":
        pytest.skip(
            "asyncio bug: its accept loop runs range(backlog) times, so "
            "backlog=0 accepts nothing and the listener spins (reactor's "
            "EventLoop does not keep it: reactor._eventloop [A5])"
        )
    server, port = serve(drv, Echo, backlog=0)
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    client.transport.write(b"accepted")
    drv.run_until(lambda: client.protocol.received == b"accepted", timeout=2)
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_reuse_port_lets_two_servers_share_a_port(drv):
    first = drv.server(Echo, "127.0.0.1", 0, reuse_port=True)
    port = drv.port_of(first)
    second = drv.server(Echo, "127.0.0.1", port, reuse_port=True)
    assert drv.port_of(second) == port


# -- errors in protocol methods ------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    "method", ["data_received", "eof_received", "connection_made", "connection_lost"]
)
def test_protocol_exception_is_reported_and_others_are_served(drv, method):
    class Faulty(Recorder):
        pass

    def raiser(self, *args):
        getattr(Recorder, method)(self, *args)
        raise Boom(method)

    setattr(Faulty, method, raiser)
    protocols = []

    def factory():
        protocols.append(Faulty() if not protocols else Echo())
        return protocols[-1]

    server, port = serve(drv, factory)
    bad = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: protocols and bad.transport is not None)
    bad.transport.write(b"trigger")
    bad.transport.write_eof()
    drv.run_until(lambda: drv.errors, what="the error hook")
    exc, where = drv.errors[0]
    assert isinstance(exc, Boom)
    if method in ("data_received", "eof_received"):
        # asyncio aborts the connection: connection_lost(exc).
        drv.run_until(lambda: protocols[0].lost_count)
        assert isinstance(protocols[0].lost, Boom)
    good = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: good.transport is not None and good.protocol.events)
    good.transport.write(b"ping")
    drv.run_until(lambda: good.protocol.received == b"ping")
    for c in (bad, good):
        c.transport.close()
    drv.run_until(lambda: good.protocol.lost_count and bad.protocol.lost_count)


@pytest.mark.parametrize(
    "method",
    ["data_received", "eof_received", "connection_made", "connection_lost", "held data_received"],
)
def test_cancelled_error_from_a_protocol_method_follows_asyncio(drv, method):
    # One policy on every path, asyncio's: any exception but SystemExit and
    # KeyboardInterrupt goes to the error hook (and, from data_received() or
    # eof_received(), aborts that connection); a CancelledError must not
    # leave the loop on one path and abort the connection on another.
    held = method.startswith("held ")
    method = method.split()[-1]

    class Faulty(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            if held:
                transport.pause_reading()
                drv.call_later(0.05, transport.resume_reading)

    def raiser(self, *args):
        getattr(Recorder, method)(self, *args)
        raise asyncio.CancelledError(method)

    setattr(Faulty, method, raiser)
    protocols = []
    _, port = serve(drv, lambda: protocols.append(Faulty()) or protocols[-1])
    client = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: protocols and client.transport is not None)
    client.transport.write(b"trigger")
    if method != "data_received":
        client.transport.write_eof()  # the server's Recorder closes on EOF
    drv.run_until(lambda: drv.errors, what="the error hook")
    assert isinstance(drv.errors[0][0], asyncio.CancelledError)
    if method in ("data_received", "eof_received"):
        drv.run_until(lambda: protocols[0].lost_count)
        assert isinstance(protocols[0].lost, asyncio.CancelledError)
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)
    drv.run_for(0.02)
    assert len(drv.errors) == 1


def test_failing_protocol_factory_is_reported(drv):
    if drv.api == "asyncio":
        pytest.skip(
            "asyncio reports a failing factory only in debug mode and leaves the "
            "accepted socket to the garbage collector (a ResourceWarning)"
        )
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            raise Boom("factory")
        return Echo()

    server, port = serve(drv, factory)
    first = socket.create_connection(("127.0.0.1", port))
    with first:
        first.settimeout(5)
        drv.run_until(lambda: drv.errors)
        assert isinstance(drv.errors[0][0], Boom)
        drv.run_for(0.05)
        assert first.recv(10) == b""  # closed
    second = drv.connect(Recorder, "127.0.0.1", port)
    drv.run_until(lambda: second.transport is not None and second.protocol.events)
    second.transport.close()
    drv.run_until(lambda: second.protocol.lost_count)


def test_default_error_hook_prints_the_traceback_naming_the_method(tmp_path):
    script = tmp_path / "faulty.py"
    script.write_text(
        textwrap.dedent("""
        import asyncio, socket, reactor
        class Faulty(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
            def data_received(self, data):
                raise ZeroDivisionError("boom in data_received")
        loop = reactor.Reactor()
        server = loop.create_server(Faulty, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peer = socket.create_connection(("127.0.0.1", port))
        peer.sendall(b"x")
        def check():
            if peer.recv(10) == b"":
                loop.stop()
        loop.call_later(0.3, check)
        loop.call_soon(lambda: loop.call_later(0.1, lambda: None))
        loop.run()
        peer.close(); server.close(); loop.close()
        print("served on")
    """)
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, cwd=os.getcwd()
    )
    assert result.returncode == 0, result.stderr
    assert "served on" in result.stdout
    assert "Faulty.data_received" in result.stderr
    assert "Traceback" in result.stderr
    assert "ZeroDivisionError: boom in data_received" in result.stderr


# -- Unix sockets --------------------------------------------------------------------


def test_unix_echo_and_stale_socket_file(drv, tmp_path):
    path = str(tmp_path / "echo.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # leaves the file behind, as a crashed server would
    server = drv.unix_server(Echo, path)
    client = drv.unix_connect(Recorder, path)
    drv.run_until(lambda: client.transport is not None and client.protocol.events)
    client.transport.write(b"over unix")
    drv.run_until(lambda: client.protocol.received == b"over unix")
    assert client.transport.get_extra_info("peername") in ("", path, b"")
    assert not client.transport.get_extra_info("socket").getsockopt(
        socket.SOL_SOCKET, socket.SO_ERROR
    )
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)
    server.close()


def test_unix_connect_to_missing_path(drv, tmp_path):
    client = drv.unix_connect(Recorder, str(tmp_path / "nobody.sock"))
    drv.run_until(lambda: client.error is not None)
    assert isinstance(client.error, FileNotFoundError)


def test_eagain_from_a_unix_connect_is_not_in_progress(drv, tmp_path):
    # [N1] EAGAIN from a non-blocking connect() to a Unix socket means the
    # listener's backlog is full: the connection does not exist, so it is an
    # error (as libuv has it), never connection_made() then ENOTCONN.
    if drv.kind == "asyncio":
        pytest.skip(
            "asyncio bug: sock_connect() takes EAGAIN (BlockingIOError) for a "
            "connect in progress and reports a connection that does not exist "
            "(reactor's EventLoop does not keep it: reactor._eventloop [A5])"
        )
    path = str(tmp_path / "full.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(0)  # Linux queues one connection, then refuses with EAGAIN
    queued = []
    try:
        while True:
            sock = socket.socket(socket.AF_UNIX)
            queued.append(sock)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:
                break
        client = drv.unix_connect(Recorder, path)
        drv.run_until(lambda: client.error is not None or client.done, what="an outcome")
        drv.run_for(0.05)
        assert client.transport is None
        assert isinstance(client.error, BlockingIOError)
        assert client.protocol is None
    finally:
        for sock in queued:
            sock.close()
        listener.close()


# -- datagrams -----------------------------------------------------------------------


class DatagramRecorder(asyncio.DatagramProtocol):
    def __init__(self):
        self.events = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def datagram_received(self, data, addr):
        self.events.append(("datagram", data, addr))

    def error_received(self, exc):
        self.events.append(("error", exc))

    def connection_lost(self, exc):
        self.events.append(("lost", exc))


class DatagramEcho(DatagramRecorder):
    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data.upper(), addr)


def test_udp_echo(drv):
    server_t, server_p = drv.datagram(DatagramEcho, local_addr=("127.0.0.1", 0))
    address = server_t.get_extra_info("sockname")
    client_t, client_p = drv.datagram(DatagramRecorder, remote_addr=address)
    drv.run_until(lambda: client_p.events)
    for i in range(20):
        client_t.sendto(b"datagram %d" % i)
    drv.run_until(lambda: len([e for e in client_p.events if e[0] == "datagram"]) == 20)
    got = [e[1] for e in client_p.events if e[0] == "datagram"]
    assert sorted(got) == sorted(b"DATAGRAM %d" % i for i in range(20))
    with pytest.raises(ValueError, match="Invalid address"):
        client_t.sendto(b"x", ("127.0.0.1", 1))
    with pytest.raises(TypeError):
        client_t.sendto("text")
    client_t.close()
    server_t.close()
    drv.run_until(lambda: client_p.events[-1][0] == "lost" and server_p.events[-1][0] == "lost")
    assert client_p.events[-1] == ("lost", None)


def test_udp_error_received_for_a_closed_port(drv):
    transport, protocol = drv.datagram(DatagramRecorder, remote_addr=("127.0.0.1", closed_port()))
    drv.run_until(lambda: protocol.events)
    transport.sendto(b"anyone?")
    drv.run_for(0.05)
    transport.sendto(b"anyone?")
    drv.run_until(lambda: any(e[0] == "error" for e in protocol.events))
    error = next(e[1] for e in protocol.events if e[0] == "error")
    assert isinstance(error, ConnectionRefusedError)
    assert not transport.is_closing()
    transport.close()
    drv.run_until(lambda: protocol.events[-1][0] == "lost")


def test_datagram_connection_lost_path_runs_twice(drv, tmp_path):
    # reactor.net._datagram's write-ready callback had the same double run as
    # the stream transport's (test_connection_lost_path_runs_twice).
    skip_asyncio_311_connection_lost_twice(drv)
    path = str(tmp_path / "peer.sock")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with peer:
        peer.bind(path)
        peer.setblocking(False)
        protocols = []

        class Sender(DatagramRecorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                protocols.append(self)
                transport.set_write_buffer_limits(high=1, low=0)
                self.events = []
                while not transport.get_write_buffer_size():  # until the kernel refuses
                    transport.sendto(b"d" * 1000, path)

            def pause_writing(self):
                self.events.append("pause_writing")

            def resume_writing(self):
                self.events.append("resume_writing")
                self.transport.close()

            def connection_lost(self, exc):
                self.events.append(("lost", exc))

        drv.datagram(Sender, sock=ours)
        drv.run_until(lambda: protocols)
        received = 0
        drv.run_until(lambda: "pause_writing" in protocols[0].events)
        while ("lost", None) not in protocols[0].events:
            try:
                while True:
                    peer.recv(2000)
                    received += 1
            except BlockingIOError:
                pass
            drv.run_for(0.005)
        drv.run_for(0.05)
        assert protocols[0].events == ["pause_writing", "resume_writing", ("lost", None)]
        assert drv.errors == []


def test_datagram_endpoint_argument_errors(drv):
    skip_asyncio_310(
        drv,
        "checks a datagram address with assert (AssertionError)",
        kinds=("asyncio", "reactor-asyncio"),
    )  # base_events' own check
    with pytest.raises(ValueError):
        drv.datagram(DatagramRecorder)
    with pytest.raises(TypeError):
        drv.datagram(DatagramRecorder, local_addr="127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock, pytest.raises(ValueError, match="socket modifier"):
        drv.datagram(DatagramRecorder, local_addr=("127.0.0.1", 0), sock=sock)


def test_a_signal_exception_during_an_interest_change_leaves_the_transport_consistent(monkeypatch):
    # A signal handler raising as selector.unregister() returned left the
    # transport believing it was still registered: its abort() then raised
    # KeyError (found by the IO models' SIGTERM test).
    import reactor

    loop = reactor.Reactor()
    try:
        server = loop.create_server(Echo, "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname())
        with client:
            while not loop._transports or len(loop._transports) < 1:
                loop.run_once(0.01)
            loop.run_once(0.01)
            [transport] = loop._transports.values()
            real = loop._selector.unregister

            def interrupted(fileobj):
                real(fileobj)
                raise KeyboardInterrupt  # what a raising signal handler does here

            monkeypatch.setattr(loop._selector, "unregister", interrupted)
            with pytest.raises(KeyboardInterrupt):
                transport.pause_reading()
                transport._set_interest(0)
            monkeypatch.undo()
            transport.abort()  # raised KeyError
            loop.run_once(0)
        server.close()
    finally:
        loop.close()
