"""TLS on the Reactor's stream transports (reactor/_tls.py), each case on the
Reactor over every selector and on asyncio's loop as the reference.
Certificates come from trustme; everything stays on loopback."""

import asyncio
import ssl

import pytest
import trustme

from _loops import LOOP_KINDS, Recorder, make_driver, skip_asyncio_310
from test_protocols import BIG, Closer, Echo, pattern


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(params=LOOP_KINDS)
def drv(request):
    # reactor's asyncio loop runs asyncio's own sslproto over its transports.
    skip_asyncio_310(
        request.param,
        "has the sslproto that 3.11 replaced (no "
        "eof_received() after a close, transports left to the "
        "garbage collector)",
        kinds=("asyncio", "reactor-asyncio"),
    )
    driver = make_driver(request.param)
    yield driver
    driver.close()


def test_tls_echo_and_extra_info(drv, server_context, client_context):
    server = drv.server(Echo, "127.0.0.1", 0, ssl=server_context)
    port = drv.port_of(server)
    client = drv.connect(
        Recorder, "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
    )
    drv.run_until(
        lambda: (
            client.error is not None or (client.protocol is not None and client.protocol.events)
        )
    )
    assert client.error is None
    transport = client.transport
    sent = b""
    for i in range(20):
        chunk = pattern(1000 * i + 1, seed=i)
        transport.write(chunk)
        sent += chunk
    drv.run_until(lambda: client.protocol.received == sent)
    assert transport.get_extra_info("sslcontext") is client_context
    assert isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)
    assert transport.get_extra_info("peercert")["subjectAltName"]
    assert transport.get_extra_info("cipher")
    assert transport.get_extra_info("peername") == ("127.0.0.1", port)
    assert not transport.can_write_eof()
    with pytest.raises(NotImplementedError):
        transport.write_eof()
    transport.close()
    assert transport.is_closing()
    drv.run_until(lambda: client.protocol.lost_count)
    # asyncio calls eof_received() once the peer answered our close_notify.
    assert client.protocol.kinds() == ["made", "data", "eof", "lost"]
    assert client.protocol.lost is None


def test_tls_write_then_close_delivers_every_byte(drv, server_context, client_context):
    class BigCloser(Closer):
        payload = pattern(BIG)

    server = drv.server(BigCloser, "127.0.0.1", 0, ssl=server_context)
    client = drv.connect(
        Recorder, "127.0.0.1", drv.port_of(server), ssl=client_context, server_hostname="localhost"
    )
    drv.run_until(lambda: client.protocol is not None and client.protocol.lost_count, timeout=60)
    assert client.protocol.received == BigCloser.payload
    # close_notify from the server: eof_received(), then connection_lost(None).
    assert client.protocol.kinds() == ["made", "data", "eof", "lost"]
    assert client.protocol.lost is None


def test_tls_bad_certificate_fails_the_client(drv, server_context):
    other_ca = trustme.CA()
    context = ssl.create_default_context()
    other_ca.configure_trust(context)
    server = drv.server(Echo, "127.0.0.1", 0, ssl=server_context)
    client = drv.connect(
        Recorder, "127.0.0.1", drv.port_of(server), ssl=context, server_hostname="localhost"
    )
    drv.run_until(lambda: client.error is not None)
    assert isinstance(client.error, ssl.SSLCertVerificationError)
    if drv.api != "asyncio":
        assert client.protocol is None or client.protocol.events == []
        # The server side goes to the exception hook (asyncio: debug log only).
        drv.run_until(lambda: drv.errors)
        assert isinstance(drv.errors[0][0], ssl.SSLError)
        assert "TLS handshake" in str(drv.errors[0][1])


def test_tls_wrong_hostname_fails_the_client(drv, server_context, client_context):
    server = drv.server(Echo, "127.0.0.1", 0, ssl=server_context)
    client = drv.connect(
        Recorder,
        "127.0.0.1",
        drv.port_of(server),
        ssl=client_context,
        server_hostname="not-the-name.example",
    )
    drv.run_until(lambda: client.error is not None)
    assert isinstance(client.error, ssl.SSLCertVerificationError)


def test_tls_sni_reaches_the_server(drv, ca, client_context):
    names = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    special = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("special.example").configure_cert(special)

    def sni(sslobj, name, ctx):
        names.append(name)
        if name == "special.example":
            sslobj.context = special

    context.sni_callback = sni
    server = drv.server(Echo, "127.0.0.1", 0, ssl=context)
    client = drv.connect(
        Recorder,
        "127.0.0.1",
        drv.port_of(server),
        ssl=client_context,
        server_hostname="special.example",
    )
    drv.run_until(
        lambda: (
            client.error is not None or (client.protocol is not None and client.protocol.events)
        )
    )
    assert client.error is None
    assert names == ["special.example"]
    client.transport.close()
    drv.run_until(lambda: client.protocol.lost_count)


def test_tls_handshake_timeout(drv, client_context):
    # A plain TCP server that never answers the ClientHello.
    server = drv.server(Recorder, "127.0.0.1", 0)
    client = drv.connect(
        Recorder,
        "127.0.0.1",
        drv.port_of(server),
        ssl=client_context,
        server_hostname="localhost",
        ssl_handshake_timeout=0.2,
    )
    drv.run_until(lambda: client.error is not None)
    assert isinstance(client.error, (ConnectionAbortedError, TimeoutError))


def test_tls_buffered_protocol_and_pause_reading(drv, server_context, client_context):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer = bytearray(1024)
            self.data = bytearray()
            self.lost = 0

        def connection_made(self, transport):
            self.transport = transport
            transport.pause_reading()

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            self.data += self.buffer[:nbytes]

        def connection_lost(self, exc):
            self.lost += 1

    servers = []
    server = drv.server(
        lambda: servers.append(Buffered()) or servers[-1], "127.0.0.1", 0, ssl=server_context
    )
    client = drv.connect(
        Recorder, "127.0.0.1", drv.port_of(server), ssl=client_context, server_hostname="localhost"
    )
    drv.run_until(lambda: servers and client.protocol is not None and client.protocol.events)
    client.transport.write(pattern(50_000))
    drv.run_for(0.1)
    assert servers[0].data == b""
    assert not servers[0].transport.is_reading()
    servers[0].transport.resume_reading()
    drv.run_until(lambda: len(servers[0].data) == 50_000)
    assert servers[0].data == pattern(50_000)
    client.transport.close()
    drv.run_until(lambda: servers[0].lost and client.protocol.lost_count)


def test_tls_protocol_exception_aborts_the_connection(drv, server_context, client_context):
    class Faulty(Recorder):
        def data_received(self, data):
            super().data_received(data)
            raise ZeroDivisionError("in data_received")

    servers = []
    server = drv.server(
        lambda: servers.append(Faulty()) or servers[-1], "127.0.0.1", 0, ssl=server_context
    )
    client = drv.connect(
        Recorder, "127.0.0.1", drv.port_of(server), ssl=client_context, server_hostname="localhost"
    )
    drv.run_until(lambda: client.protocol is not None and client.protocol.events)
    client.transport.write(b"trigger")
    drv.run_until(lambda: servers and servers[0].lost_count and client.protocol.lost_count)
    assert any(isinstance(exc, ZeroDivisionError) for exc, _ in drv.errors)
    assert isinstance(servers[0].lost, ZeroDivisionError)


@pytest.mark.parametrize("server_hostname", ["x..y", "a" * 64 + ".example"])
def test_tls_errors_after_the_tcp_connect_escape(
    drv, server_context, client_context, server_hostname
):
    # wrap_bio() refuses the name only once the TCP connect is done: that
    # error must reach on_error, and the connected socket be closed.
    if drv.api == "asyncio":
        pytest.skip(
            "asyncio reports the ValueError but leaves the connected socket to "
            "the garbage collector (a ResourceWarning); reactor's EventLoop keeps "
            "asyncio's create_connection()"
        )
    server = drv.server(Echo, "127.0.0.1", 0, ssl=server_context)
    client = drv.connect(
        Recorder,
        "127.0.0.1",
        drv.port_of(server),
        ssl=client_context,
        server_hostname=server_hostname,
    )
    drv.run_until(lambda: client.error is not None, what="on_error")
    assert isinstance(client.error, (ValueError, UnicodeError))
    assert client.handle.done()
    assert client.handle.transport is None
    drv.run_for(0.02)
    assert not any(isinstance(exc, (ValueError, UnicodeError)) for exc, _ in drv.errors)


def test_tls_connection_made_that_raises_finishes_the_handle(drv, server_context, client_context):
    class Faulty(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise ZeroDivisionError("in connection_made")

    server = drv.server(Echo, "127.0.0.1", 0, ssl=server_context)
    client = drv.connect(
        Faulty, "127.0.0.1", drv.port_of(server), ssl=client_context, server_hostname="localhost"
    )
    drv.run_until(lambda: drv.errors, what="the error hook")
    assert isinstance(drv.errors[0][0], ZeroDivisionError)
    if drv.api != "asyncio":
        drv.run_until(lambda: client.handle.done(), timeout=2, what="the handle to finish")
        assert client.handle.protocol.events[0] == ("made",)
        drv.run_until(lambda: client.handle.protocol.lost_count)
        assert isinstance(client.handle.protocol.lost, ZeroDivisionError)


def test_tls_transport_collected_after_reactor_close_calls_nothing(
    server_context, client_context, monkeypatch
):
    # TLSTransport.__del__ aborted, and abort() called call_soon() on the
    # closed Reactor ("Exception ignored" at collection; from a collection
    # in another thread, a call_soon() that is not thread-safe).
    import gc
    import threading
    import warnings

    import reactor

    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    loop = reactor.Reactor()
    made = []

    class Keep(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)

    server = loop.create_server(Keep, "127.0.0.1", 0, ssl=server_context)
    handle = loop.create_connection(
        Keep,
        "127.0.0.1",
        server.sockets[0].getsockname()[1],
        ssl=client_context,
        server_hostname="localhost",
    )
    for _ in range(500):
        if len(made) == 2:
            break
        loop.run_once(0.01)
    assert len(made) == 2
    server.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # unclosed, as asyncio says
        loop.close()
        del handle, server, loop
        in_thread = threading.Thread(target=lambda: (made.pop(), gc.collect()))
        in_thread.start()
        in_thread.join()
        made.clear()
        gc.collect()
    assert unraisable == []


def test_tls_cancel_during_the_handshake_calls_nothing(drv, client_context):
    # A plain TCP server that never answers the ClientHello: the handshake
    # is under way when the connection is cancelled.
    servers = []
    server = drv.server(lambda: servers.append(Recorder()) or servers[-1], "127.0.0.1", 0)
    made = []

    class Watch(Recorder):
        def connection_made(self, transport):
            made.append(transport)
            super().connection_made(transport)

    client = drv.connect(
        Watch, "127.0.0.1", drv.port_of(server), ssl=client_context, server_hostname="localhost"
    )
    drv.run_until(lambda: servers and servers[0].received, what="the ClientHello")
    drv.cancel(client)
    drv.run_until(lambda: servers[0].lost_count, what="the client's socket closed")
    drv.run_for(0.05)
    assert made == [] and client.error is None and client.transport is None
    assert drv.errors == []
