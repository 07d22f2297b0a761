"""A small TCP server layer on the Reactor: correct without boilerplate.

Facts this module relies on:

[T1] One readiness event on a listening socket may stand for many pending
     connections: accept until EAGAIN, at most `accepts_per_event` at a
     time so one busy listener cannot starve the connections.
[T2] send() on a non-blocking socket may take part of the data.  What it
     leaves is buffered and the connection waits for EVENT_WRITE until the
     buffer drains; no write event is asked for while nothing is owed (a
     writable socket is almost always writable: it would spin).
[T3] A peer that sends but does not read makes our buffer grow without
     bound.  Past `max_outbound` bytes owed, the connection stops reading
     from that peer (its own sends then block in its kernel buffers); it
     reads again once the buffer drains.  Memory per connection is bounded
     by max_outbound + one read.
[T4] recv() returning b"" is the peer's FIN (it may still read: half
     close): we flush what we owe, then close.  ECONNRESET and EPIPE close
     at once, dropping what is owed.
[T5] accept() failing with EMFILE/ENFILE leaves the connection queued and
     the listener readable: accepting is paused for a moment instead of
     spinning.
"""

import errno
import logging
import operator
import socket
from time import monotonic
from typing import Any

from ._loop import logger

__all__ = ["TCPServer", "Connection"]

_EVENT_READ, _EVENT_WRITE = 1, 2
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_RESET = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class Connection:
    """One accepted connection: ``write()`` queues, ``close()`` ends it."""

    __slots__ = ("server", "sock", "address", "fd", "_out", "_reading", "_eof",
                 "_closed", "last_active", "_on_data", "_read_size", "_track_idle",
                 "__weakref__")

    def __init__(self, server, sock, address):
        self.server = server
        self.sock = sock
        self.address = address
        self.fd = sock.fileno()
        self._out = None          # bytearray of what send() has not taken [T2]
        self._reading = True
        self._eof = False
        self._closed = False
        self.last_active = 0.0
        self._on_data = server._on_data
        self._read_size = server.read_size
        self._track_idle = server.idle_timeout is not None
        server.reactor.register(sock, _EVENT_READ, self._on_ready)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes queued for the peer and not yet taken by the kernel."""
        return len(self._out) if self._out else 0

    def write(self, data: bytes) -> None:
        """Send `data`, queueing what the kernel does not take now."""
        if self._closed:
            return
        out = self._out
        if out:
            out += data
        else:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except _RESET:
                self.close()
                return
            if sent == len(data):
                return
            self._out = out = bytearray(memoryview(data)[sent:])
            self._update_interest()
        if self._reading and len(out) > self.server.max_outbound:
            self._reading = False  # [T3]
            self._update_interest()

    def _on_ready(self, sock, mask):
        if mask & 2:  # EVENT_WRITE (a literal: this runs once per message)
            self._flush()
            if self._closed:
                return
        if mask & 1 and self._reading:  # EVENT_READ
            try:
                data = sock.recv(self._read_size)
            except (BlockingIOError, InterruptedError):
                return
            except _RESET:
                self.close()  # [T4]
                return
            if data:
                if self._track_idle:
                    self.last_active = monotonic()
                self._on_data(self, data)
            else:
                self._on_eof()

    def _flush(self):
        out = self._out
        try:
            sent = self.sock.send(out)
        except (BlockingIOError, InterruptedError):
            return
        except _RESET:
            self.close()
            return
        del out[:sent]
        if not out:
            self._out = None
            if self._eof:
                self.close()  # [T4] all owed is sent
                return
            self._reading = True
            self._update_interest()
        elif not self._reading and not self._eof and len(out) <= self.server.max_outbound // 2:
            self._reading = True
            self._update_interest()

    def _on_eof(self):
        self._eof = True
        self._reading = False
        if self.server._on_eof is not None:
            self.server._on_eof(self)
        if self._closed:
            return
        if self._out:
            self._update_interest()
        else:
            self.close()

    def _update_interest(self):
        events = (_EVENT_READ if self._reading else 0) | (_EVENT_WRITE if self._out else 0)
        if events:
            self.server.reactor.modify(self.sock, events, self._on_ready)

    def close(self) -> None:
        """Close now, dropping anything still queued."""
        if self._closed:
            return
        self._closed = True
        self._out = None
        reactor = self.server.reactor
        if not reactor.is_closed():
            reactor.unregister(self.sock)
        self.sock.close()
        self.server._connection_closed(self)


def _listening_socket(host, port, backlog):
    """A non-blocking listening socket (IPv6 for a host with a colon).
    Not socket.create_server(): it closes its socket only on OSError, and
    leaks it when bind() or listen() raise anything else (a port out of
    range, a host that is not a str)."""
    family = socket.AF_INET6 if isinstance(host, str) and ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class TCPServer:
    """Accept TCP connections and call ``on_data(connection, data)``.

    on_connect(connection), on_eof(connection) and on_close(connection) are
    optional.  max_connections: connections past it are accepted and closed
    at once (the others keep being served).  idle_timeout: seconds without
    data after which a connection is closed.  max_outbound: bytes queued for
    a peer before we stop reading from it [T3].
    """

    def __init__(self, reactor, host="127.0.0.1", port=0, on_data=None, *,
                 on_connect=None, on_eof=None, on_close=None, backlog=1024,
                 max_connections=None, idle_timeout=None, max_outbound=1 << 20,
                 read_size=65536, accepts_per_event=64):
        if on_data is None:
            raise TypeError("on_data is required")
        for name, value in (("max_outbound", max_outbound), ("read_size", read_size),
                            ("accepts_per_event", accepts_per_event)):
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
        self.connections = set()
        self.refused = 0
        self._closed = False
        self._sweep_timer = None
        self._resume_timer = None
        self.sock = _listening_socket(host, port, backlog)
        try:
            reactor.register(self.sock, _EVENT_READ, self._on_accept)
            if idle_timeout is not None:
                self._sweep_timer = reactor.call_later(idle_timeout / 4, self._sweep_idle)
        except BaseException:
            self.close()  # nothing half-made is left registered or open
            raise

    @property
    def address(self) -> Any:
        return self.sock.getsockname()

    def _on_accept(self, listener, mask):
        for _ in range(self.accepts_per_event):  # [T1]
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    self._pause_accepting(exc)  # [T5]
                    return
                raise
            if self.max_connections is not None and len(self.connections) >= self.max_connections:
                self.refused += 1
                sock.close()
                continue
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(self, sock, address)
            if self.idle_timeout is not None:
                connection.last_active = monotonic()
            self.connections.add(connection)
            if self._on_connect is not None:
                self._on_connect(connection)

    def _pause_accepting(self, exc):
        logger.warning("accept() failed (%s): pausing accepts for 0.1 s; "
                       "raise RLIMIT_NOFILE to hold more connections", exc)
        self.reactor.unregister(self.sock)
        self._resume_timer = self.reactor.call_later(0.1, self._resume_accepting)

    def _resume_accepting(self):
        self._resume_timer = None
        if not self._closed:
            self.reactor.register(self.sock, _EVENT_READ, self._on_accept)

    def _sweep_idle(self):
        deadline = monotonic() - self.idle_timeout
        for connection in [c for c in self.connections if c.last_active <= deadline]:
            connection.close()
        if not self._closed:
            self._sweep_timer = self.reactor.call_later(self.idle_timeout / 4, self._sweep_idle)

    def _connection_closed(self, connection):
        self.connections.discard(connection)
        if self._on_close is not None:
            self._on_close(connection)

    def close(self) -> None:
        """Stop listening and close every connection."""
        if self._closed:
            return
        self._closed = True
        for timer in (self._sweep_timer, self._resume_timer):
            if timer is not None:
                timer.cancel()
        if not self.reactor.is_closed():
            try:
                self.reactor.unregister(self.sock)
            except KeyError:
                pass  # accepting was paused [T5]
        self.sock.close()
        for connection in list(self.connections):
            connection.close()


logging.getLogger("reactor").addHandler(logging.NullHandler())
