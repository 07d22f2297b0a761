"""What every socket transport on the Reactor shares: asyncio's Transport
interface over one non-blocking socket, with asyncio's meaning.

Streams (reactor.net._streams) and datagrams (reactor.net._datagram) build on this;
TLS (reactor.net._tls) sits on top of a stream transport.  The model is asyncio's
``selector_events.py``: whatever a protocol can observe (which method is
called, in which iteration, with what) is the same, so that an existing
``asyncio.Protocol`` runs unchanged.

Facts this module relies on:

[X1] asyncio's order, which protocols may rely on: connection_made() runs
     in a later iteration than the one that made the transport (call_soon),
     and reading starts after it.  connection_lost() runs exactly once, in
     an iteration of its own (call_soon), or, when close() waited for the
     write buffer to drain, from the write-ready callback that sent the
     last byte; the socket is closed after connection_lost() returns.
[X2] The transport asks the selector for EVENT_WRITE only while its write
     buffer holds something (a writable socket is almost always writable:
     asking while nothing is owed spins), and for EVENT_READ only while
     reading (not paused, not closing, no EOF yet).  With no interest left
     the fd is unregistered, never parked with an empty mask (HUP and ERR
     would still wake the loop).
[X3] Flow control (asyncio's _FlowControlMixin): pause_writing() once the
     write buffer grows past the high-water mark (default 64 KiB),
     resume_writing() once it drains to the low-water mark (default a
     quarter of the high one).  An exception from either goes to
     loop.handle_exception() and the connection carries on, as in asyncio.
[X4] An exception from a protocol method is the protocol's bug, not the
     peer's: it goes to loop.handle_exception() naming that method, and the
     connection is aborted, with connection_lost(exc), as asyncio does.  An
     OSError from the socket (reset, broken pipe) ends the connection
     quietly: connection_lost(exc) is how the protocol hears of it.
     SystemExit and KeyboardInterrupt are never caught; anything else is,
     CancelledError included (asyncio's policy, on every path: also by
     the loop, which runs connection_made(): reported without aborting,
     as asyncio's Handle does).
[X5] After the connection is lost, write() does not raise: writes are
     counted and, past LOG_THRESHOLD_FOR_CONNLOST_WRITES of them, logged
     (asyncio's "socket.send() raised exception.").
[X7] The transports serve two loops: the callback Reactor (reactor._loop)
     and the asyncio EventLoop (reactor._eventloop).  They reach the
     selector only through loop._poller (reactor._poller), report errors
     through loop._report_error(exc, where, transport), and schedule with
     loop.call_soon().  On the asyncio loop a transport has a context
     (contextvars, copied where it was made, as uvloop does): every
     protocol method runs in it; a call made from the user's own code
     (write() pausing the protocol) runs in a copy, since the context may
     be entered already.
[X8] The kernel may refuse a registration (ENOMEM; ENOSPC once
     fs.epoll.max_user_watches is reached): that connection cannot be
     served, so it ends as a broken one does (connection_lost(exc)) and the
     loop serves the others.  (asyncio only reports the error and leaves the
     connection open and unwatched: its peer waits forever.)
[X6] The loop knows its transports by fd (loop._transports).  Reactor.close()
     discards pending callbacks, as asyncio's does, so a transport closed
     just before would never close its socket: close() releases every
     transport still there (no protocol method is called), with a
     ResourceWarning for one nobody had closed.
"""

from __future__ import annotations

import warnings
from asyncio.transports import _FlowControlMixin

from .._events import describe, logger

__all__ = ["SocketTransport", "LOG_THRESHOLD_FOR_CONNLOST_WRITES"]

_READ, _WRITE = 1, 2
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5  # asyncio.constants' [X5]


def _call(function, *args):
    return function(*args)


class SocketTransport(_FlowControlMixin):
    """Bookkeeping shared by the stream and datagram transports."""

    # asyncio's _FlowControlMixin (which asyncio's sendfile fallback asks
    # for) has __slots__ for _loop, _protocol_paused and the water marks;
    # the transports keep the rest in slots too (an attribute lookup per
    # message is on the hot path).  A __dict__ as well, as asyncio's
    # transports have: code (and tests) may set attributes on a transport,
    # or patch its methods.
    __slots__ = (
        "_sock",
        "_fd",
        "_protocol",
        "_protocol_connected",
        "_server",
        "_buffer",
        "_conn_lost",
        "_closing",
        "_paused",
        "_interest",
        "_on_ready_cb",
        "_autoread",
        "_read_code",
        "_reading_started",
        "_context",
        "_enter",
        "__weakref__",
        "__dict__",
    )

    # Whether the loop may read for this kind of transport (reactor._poller
    # [W1]); a stream transport says yes unless its protocol is buffered.
    _reads_for_it = False

    max_size = 256 * 1024  # bytes asked of one recv(), as asyncio

    def __init__(self, loop, sock, protocol, extra=None, server=None, context=None):
        super().__init__(extra, loop)
        self._extra.setdefault("socket", sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = None
        self._protocol_connected = False
        self._server = server
        self._conn_lost = 0  # > 0 once connection_lost() is scheduled
        self._closing = False  # close() or abort() was called
        self._paused = False  # pause_reading()
        self._reading_started = False  # after connection_made() [X1]
        self._interest = 0  # the events registered with the selector [X2]
        self._context = context  # [X7]
        if context is None:
            self._enter = _call
            self._on_ready_cb = self._on_ready
        else:
            self._enter = context.run
            self._on_ready_cb = self._on_ready_in_context
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self._protocol_paused = False
        self._autoread = False
        self._read_code = 0  # our readable event's code in the Poller's readers [W2]
        self.set_protocol(protocol)
        if server is not None:
            server._attach(self)
        loop._transports[self._fd] = self  # [X6]

    def __repr__(self):
        state = "closed" if self._sock is None else "closing" if self._closing else "open"
        return (
            f"<{type(self).__name__} fd={self._fd} {state} "
            f"read={'polling' if self._interest & _READ else 'idle'} "
            f"write=<{'polling' if self._interest & _WRITE else 'idle'}, "
            f"bufsize={self.get_write_buffer_size()}>>"
        )

    # -- asyncio.BaseTransport ---------------------------------------------------

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    def close(self):
        """Stop reading; connection_lost(None) once the write buffer is
        sent [X1]."""
        if self._closing:
            return
        self._closing = True
        self._update_fast_paths()
        if self._buffer:
            self._set_interest(self._interest & ~_READ)
        else:
            self._set_interest(0)
            self._conn_lost += 1
            self._update_fast_paths()
            self._call_soon(self._call_connection_lost, None)

    def abort(self):
        """Close now, dropping the write buffer."""
        self._force_close(None)

    # -- reading ---------------------------------------------------------------

    def _start(self, waiter=None):
        """connection_made(), then reading, each in an iteration to come
        [X1]; then `waiter` (an asyncio future) gets its result."""
        self._call_soon(self._protocol.connection_made, self)
        self._call_soon(self._start_reading)
        if waiter is not None:
            self._call_soon(_set_result_unless_cancelled, waiter)

    def _call_soon(self, callback, *args):
        """loop.call_soon(), in our context [X7]."""
        if self._context is None:
            return self._loop.call_soon(callback, *args)
        return self._loop.call_soon(callback, *args, context=self._context)

    def _on_ready_in_context(self, fd, mask):
        self._context.run(self._on_ready, fd, mask)

    def _start_reading(self):
        self._reading_started = True
        if not (self._closing or self._paused):
            self._set_interest(self._interest | _READ)

    def is_reading(self):
        return not self._closing and not self._paused

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        self._update_fast_paths()
        self._set_interest(self._interest & ~_READ)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._update_fast_paths()
        self._read_again()

    def _read_again(self):
        """Watch for reading again, after resume_reading()."""
        if self._reading_started:
            self._set_interest(self._interest | _READ)

    # -- flow control [X3] ------------------------------------------------------

    def get_write_buffer_limits(self):
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self):
        if self.get_write_buffer_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        # Called from the user's write(): in a copy of our context [X7].
        context = self._context
        if context is None:
            call_reporting(self._loop, self._protocol.pause_writing, transport=self)
        else:
            context.copy().run(
                call_reporting, self._loop, self._protocol.pause_writing, transport=self
            )

    def _maybe_resume_protocol(self):
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            call_reporting(self._loop, self._protocol.resume_writing, transport=self)

    # -- the selector [X2] -------------------------------------------------------

    def _set_interest(self, events):
        """Make the selector watch exactly `events` for us [X2]; a
        registration the kernel refuses ends this connection [X8]."""
        try:
            self._loop._poller.set_interest(self, events)
        except OSError as exc:
            if self._conn_lost:
                raise
            self._fatal_error(exc, f"epoll_ctl() on {self!r}")

    def _update_autoread(self):
        """Read for this transport in the loop's wait, or stop: after a
        change of protocol (a buffered one reads itself)."""
        self._loop._poller.set_autoread(self, self._reads_for_it)

    def _on_ready(self, fd, mask):
        raise NotImplementedError

    # -- ending ------------------------------------------------------------------

    def _fatal_error(self, exc, where):
        """The one path for a broken connection [X4]: `where` names what
        failed (a protocol method, or what the transport was doing)."""
        if not isinstance(exc, OSError):
            self._loop._report_error(exc, where, self)
        self._force_close(exc)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
        self._closing = True
        self._conn_lost += 1
        self._update_fast_paths()
        if self._sock is not None:
            self._set_interest(0)
        self._call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        # Once [X1]: a close() from resume_writing() after the last byte went
        # out has scheduled this, and the write-ready callback calls it too.
        protocol = self._protocol
        connected, self._protocol_connected = self._protocol_connected, False
        try:
            if connected:
                call_reporting(self._loop, protocol.connection_lost, exc, transport=self)
        finally:
            self._release()

    def _release(self):
        """Unregister and close the socket; forget the protocol and server."""
        sock = self._sock
        if sock is None:
            return
        if not self._loop.is_closed():
            self._set_interest(0)
        self._sock = None
        self._update_fast_paths()
        if self._loop._transports.get(self._fd) is self:
            del self._loop._transports[self._fd]
        sock.close()
        self._protocol = None
        server, self._server = self._server, None
        if server is not None:
            server._detach(self)

    def _update_fast_paths(self):
        """After a state change: which fast paths apply now (reactor.net._streams
        [ST5]); a transport without fast paths has nothing to do."""

    def _lost_write(self):
        """write() after the connection was lost [X5]."""
        if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning("socket.send() raised exception.")
        self._conn_lost += 1

    def __del__(self, _warn=warnings.warn):
        sock = getattr(self, "_sock", None)
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()


def call_reporting(loop, method, *args, transport=None):
    """method(*args); an exception from it is reported by the loop, naming
    it, and the connection carries on [X3][X4]."""
    try:
        method(*args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop._report_error(exc, method, transport)


def _set_result_unless_cancelled(waiter):
    if not waiter.cancelled():
        waiter.set_result(None)


def check_data(data):
    """write()'s argument check, asyncio's message: bytes, bytearray or a
    memoryview (cast to bytes so that lengths count bytes)."""
    cls = data.__class__
    if cls is bytes or cls is bytearray:
        return data
    if cls is memoryview or isinstance(data, (bytes, bytearray, memoryview)):
        if isinstance(data, memoryview) and data.format != "B":
            data = data.cast("B")
        return data
    raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")


__all__ += ["call_reporting", "check_data", "describe"]
