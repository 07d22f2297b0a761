"""The chapter's TCP server API, ``TCPServer(loop, host, port, on_data)``, as
a thin layer over the Reactor's create_server() (reactor.net._servers): one small
protocol per connection turns asyncio's protocol calls into the chapter's
callbacks.

Facts this module relies on (the transport's are in reactor.net._transports):

[C1] A peer that sends but does not read makes our write buffer grow
     without bound.  Past `max_outbound` bytes owed (the transport's
     high-water mark, pause_writing()) the connection stops reading from
     that peer, whose own sends then block in its kernel buffers; it reads
     again once the buffer drains to a quarter of it (resume_writing(), at
     the transport's default low-water mark).  Memory per
     connection is bounded by max_outbound + one read (`read_size`, 256 KiB
     by default, as asyncio's).
[C2] The peer's FIN is a half-close: on_eof(connection) runs, then what is
     owed is sent, then the connection closes.  A reset closes at once.
     Connection.close() sends what is queued first; abort() does not.
[C3] Connections past `max_connections` are accepted and closed at once, so
     the listener's queue keeps moving; the others go on being served.
     A slot is taken when the protocol is made and given back when the
     connection ends: at connection_lost(), or, for a TLS connection whose
     handshake failed (the protocol never heard of it), when the server
     lets it go (reactor.net._tls [T6]).
[C4] accept() failing for lack of fds (EMFILE...) pauses accepting for
     0.1 s (the chapter's loop is interactive: asyncio waits 1 s).
"""

from __future__ import annotations

import asyncio
import operator
from time import monotonic
from typing import Any

from ..net._servers import create_server

__all__ = ["TCPServer", "Connection"]


class Connection:
    """One accepted connection: ``write()`` sends, ``close()`` ends it once
    what is queued is sent, ``abort()`` ends it at once.  Any attribute may
    be set on it to keep per-connection state."""

    def __init__(self, server, transport):
        self.server = server
        self.transport = transport
        self.sock = transport.get_extra_info("socket")
        self.address = transport.get_extra_info("peername")
        self.fd = self.sock.fileno()
        self.last_active = 0.0
        self._closed = False

    def __repr__(self):
        return f"<Connection {self.address!r}{' closed' if self._closed else ''}>"

    @property
    def closed(self) -> bool:
        """True once close() or abort() was called, or the peer is gone."""
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes queued for the peer and not yet taken by the kernel."""
        return self.transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        """Send `data`, queueing what the kernel does not take now; ignored
        once closed."""
        if not self._closed:
            self.transport.write(data)

    def close(self) -> None:
        """Close once everything queued is sent [C2]."""
        self._closed = True
        self.transport.close()

    def abort(self) -> None:
        """Close now, dropping anything still queued."""
        self._closed = True
        self.transport.abort()


class _ChapterProtocol(asyncio.Protocol):
    """Turns one connection's protocol calls into the server's callbacks."""

    __slots__ = ("server", "connection", "_holds_slot")

    def __init__(self, server):
        self.server = server
        self.connection = None
        self._holds_slot = True  # [C3]

    def _give_back_slot(self):
        if self._holds_slot:
            self._holds_slot = False
            self.server._admitted -= 1

    def connection_made(self, transport):
        server = self.server
        transport._set_read_size(server.read_size)
        transport.set_write_buffer_limits(high=server.max_outbound)  # [C1]
        connection = self.connection = Connection(server, transport)
        if server.idle_timeout is not None:
            connection.last_active = monotonic()
        server.connections.add(connection)
        if server._on_connect is not None:
            server._on_connect(connection)

    def data_received(self, data):
        connection = self.connection
        if connection.server.idle_timeout is not None:
            connection.last_active = monotonic()
        connection.server._on_data(connection, data)

    def eof_received(self):  # [C2]
        connection = self.connection
        server = connection.server
        if server._on_eof is not None:
            server._on_eof(connection)
        connection._closed = True
        return None  # the transport closes once what is owed is sent

    def pause_writing(self):  # [C1]
        self.connection.transport.pause_reading()

    def resume_writing(self):
        self.connection.transport.resume_reading()

    def connection_lost(self, exc):
        self._give_back_slot()
        connection = self.connection
        if connection is None:
            return
        connection._closed = True
        server = connection.server
        server.connections.discard(connection)
        if server._on_close is not None:
            server._on_close(connection)


def _client_gone(transport):
    """A connection ended: its slot comes back, even if its TLS handshake
    failed and its protocol never heard of it [C3]."""
    protocol = transport.get_protocol()
    if protocol.__class__ is _ChapterProtocol:
        protocol._give_back_slot()


class _Refused(asyncio.Protocol):
    """The protocol of a connection past max_connections [C3]."""

    def connection_made(self, transport):
        transport.abort()


class TCPServer:
    """Accept TCP connections and call ``on_data(connection, data)``.

    on_connect(connection), on_eof(connection) and on_close(connection) are
    optional.  max_connections: connections past it are accepted and closed
    at once [C3].  idle_timeout: seconds without data after which a
    connection is closed.  max_outbound: bytes queued for a peer before we
    stop reading from it [C1].  An exception from a callback goes to
    reactor.handle_exception() and aborts that connection, as an exception
    from any protocol method does.
    """

    def __init__(
        self,
        reactor,
        host="127.0.0.1",
        port=0,
        on_data=None,
        *,
        on_connect=None,
        on_eof=None,
        on_close=None,
        backlog=1024,
        max_connections=None,
        idle_timeout=None,
        max_outbound=1 << 20,
        read_size=256 * 1024,
        accepts_per_event=64,
        reuse_port=None,
        ssl=None,
    ):
        if on_data is None:
            raise TypeError("on_data is required")
        for name, callback in (
            ("on_data", on_data),
            ("on_connect", on_connect),
            ("on_eof", on_eof),
            ("on_close", on_close),
        ):
            if callback is not None and not callable(callback):
                raise TypeError(f"{name} must be callable, not {type(callback).__name__}")
        for name, value in (
            ("max_outbound", max_outbound),
            ("read_size", read_size),
            ("accepts_per_event", accepts_per_event),
            ("backlog", backlog),
        ):
            if operator.index(value) < 1:  # TypeError for a non-integer
                raise ValueError(f"{name} must be >= 1")
        if max_connections is not None and operator.index(max_connections) < 0:
            raise ValueError("max_connections must be >= 0 or None")
        if idle_timeout is not None:
            idle_timeout = float(idle_timeout)  # TypeError, OverflowError
            if not idle_timeout > 0:
                raise ValueError("idle_timeout must be > 0 or None")
        self.reactor = reactor
        self._on_data = on_data
        self._on_connect = on_connect
        self._on_eof = on_eof
        self._on_close = on_close
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_outbound = max_outbound
        self.read_size = read_size
        self.accepts_per_event = accepts_per_event
        self.connections: set[Connection] = set()
        self.accepted = 0  # connections admitted so far (refused ones not counted)
        self.refused = 0
        self._admitted = 0  # protocols made and not yet lost
        self._closed = False
        self._sweep_timer = None
        self._server = create_server(
            reactor,
            self._new_protocol,
            host,
            port,
            backlog=backlog,
            reuse_port=reuse_port,
            ssl=ssl,
        )
        if not self._server.sockets:  # host=[]: asyncio listens on nothing
            self._server.close()
            raise ValueError(f"host {host!r} gives no address to listen on")
        self._server._accepts_per_event = accepts_per_event
        self._server.ACCEPT_RETRY_DELAY = 0.1  # [C4]
        self._server._client_gone = _client_gone  # [C3]
        self.sock = self._server.sockets[0]
        if idle_timeout is not None:
            self._sweep_timer = reactor.call_later(idle_timeout / 4, self._sweep_idle)

    @property
    def address(self) -> Any:
        return self.sock.getsockname()

    @property
    def server(self):
        """The reactor.Server underneath."""
        return self._server

    def _new_protocol(self):
        # Counted from here, not from connection_made(): one accept batch
        # makes many protocols before the first connection_made() [C3].
        if self.max_connections is not None and self._admitted >= self.max_connections:
            self.refused += 1
            return _Refused()
        self._admitted += 1
        self.accepted += 1
        return _ChapterProtocol(self)

    def _sweep_idle(self):
        deadline = monotonic() - self.idle_timeout
        for connection in [c for c in self.connections if c.last_active <= deadline]:
            connection.close()
        if not self._closed:
            self._sweep_timer = self.reactor.call_later(self.idle_timeout / 4, self._sweep_idle)

    def close(self) -> None:
        """Stop listening and close every connection (what is queued is
        still sent)."""
        if self._closed:
            return
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self._server.close()
        for connection in list(self.connections):
            connection.close()
        self._server.close_clients()  # those still in their TLS handshake [T6]
