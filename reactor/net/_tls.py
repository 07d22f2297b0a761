"""TLS for stream transports: a state machine over a pair of ssl.MemoryBIO,
between a stream transport (reactor.net._streams) and the application's
protocol, which sees asyncio's transport interface (as over asyncio's own
sslproto.py).

States: HANDSHAKE -> WRAPPED -> SHUTDOWN -> CLOSED (and HANDSHAKE -> CLOSED
when the handshake fails).  The layer is the stream transport's protocol:
ciphertext arrives through its data_received() and leaves through the
stream transport's write(); plaintext goes to and from the application.

Facts this module relies on:

[T1] With memory BIOs, SSLObject never does IO: do_handshake(), read() and
     unwrap() raise SSLWantReadError until the peer's bytes are fed to the
     incoming BIO, and everything they produce (handshake messages, alerts,
     close_notify, session tickets) waits in the outgoing BIO.  So after
     every SSLObject call the outgoing BIO is flushed to the transport.
[T2] write() never waits: a memory BIO takes any amount, so plaintext is
     encrypted at once and the ciphertext queues in the stream transport,
     whose flow control (pause_writing/resume_writing) is passed through to
     the application.
[T3] A failed handshake (a certificate that does not verify, a peer that
     does not speak TLS) leaves an alert in the outgoing BIO: it is sent,
     then the connection closes.  The error goes to on_error(exc) (a client
     connection) or to loop.handle_exception() (a server's).  The
     application's protocol never hears of a connection whose handshake
     failed.
[T4] close() sends close_notify, then waits for the peer's (or its FIN) for
     up to SHUTDOWN_TIMEOUT before closing the socket: closing a socket
     whose receive queue holds unread bytes makes the kernel send RST and
     drop what it had not sent yet.
[T5] TLS cannot half-close: write_eof() raises NotImplementedError and
     can_write_eof() is False (asyncio's); a close_notify from the peer is
     eof_received() for the application, and its return value is ignored,
     with asyncio's warning.
[T6] A server's connection is the server's from the start of its
     handshake: close_clients() and abort_clients() reach it, and closing
     it then ends it quietly (not a handshake failure).  Server._detach()
     runs when it ends, whether the application's protocol ever heard of
     it or not (reactor.chapter._tcp [C3] counts its slots by it).
"""

from __future__ import annotations

import asyncio
import ssl
import warnings

from .._events import logger
from ._transports import LOG_THRESHOLD_FOR_CONNLOST_WRITES, call_reporting, check_data

__all__ = ["start_tls", "TLSTransport"]

_HANDSHAKE, _WRAPPED, _SHUTDOWN, _CLOSED = "HANDSHAKE", "WRAPPED", "SHUTDOWN", "CLOSED"
_AGAIN = (ssl.SSLWantReadError, ssl.SSLSyscallError)
HANDSHAKE_TIMEOUT = 60.0  # asyncio's SSL_HANDSHAKE_TIMEOUT
SHUTDOWN_TIMEOUT = 30.0  # asyncio's SSL_SHUTDOWN_TIMEOUT [T4]


def start_tls(
    loop,
    sock,
    protocol,
    context,
    *,
    server_side,
    server_hostname=None,
    handshake_timeout=None,
    on_error=None,
    on_done=None,
    extra=None,
    server=None,
):
    """Run TLS over the connected socket `sock`; `protocol` gets
    connection_made() once the handshake is done.  Returns the layer (its
    abort() stops the handshake)."""
    from ._streams import StreamTransport

    layer = _TLSLayer(
        loop,
        protocol,
        context,
        server_side,
        server_hostname,
        HANDSHAKE_TIMEOUT if handshake_timeout is None else handshake_timeout,
        on_error,
        on_done,
        server,
    )
    StreamTransport(loop, sock, layer, extra)
    return layer


class TLSTransport(asyncio.Transport):
    """What the application's protocol sees: asyncio's transport over TLS."""

    def __init__(self, layer):
        super().__init__(None)
        self._layer = layer
        self._closed = False

    def get_extra_info(self, name, default=None):
        layer = self._layer
        if name in layer._extra:
            return layer._extra[name]
        if layer._transport is not None:
            return layer._transport.get_extra_info(name, default)
        return default

    def set_protocol(self, protocol):
        self._layer._set_app_protocol(protocol)

    def get_protocol(self):
        return self._layer._app_protocol

    def is_closing(self):
        return self._closed

    def close(self):
        """Send close_notify and close once the peer answers [T4]."""
        if not self._closed:
            self._closed = True
            self._layer._start_shutdown()

    def abort(self):
        self._closed = True
        self._layer._abort(None)

    def is_reading(self):
        return not self._closed and not self._layer._app_reading_paused

    def pause_reading(self):
        if self._closed or self._layer._app_reading_paused:
            return
        self._layer._app_reading_paused = True
        if self._layer._transport is not None:
            self._layer._transport.pause_reading()

    def resume_reading(self):
        layer = self._layer
        if self._closed or not layer._app_reading_paused:
            return
        layer._app_reading_paused = False
        if layer._transport is not None:
            layer._transport.resume_reading()
            layer._loop.call_soon(layer._read_pending)  # what the BIO already holds

    def _set_read_size(self, size):
        """Ask at most `size` bytes of each recv() of the socket beneath."""
        if self._layer._transport is not None:
            self._layer._transport._set_read_size(size)

    def set_write_buffer_limits(self, high=None, low=None):
        if self._layer._transport is not None:
            self._layer._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self):
        transport = self._layer._transport
        return transport.get_write_buffer_limits() if transport is not None else (0, 0)

    def get_write_buffer_size(self):
        layer = self._layer
        size = layer._outgoing.pending
        if layer._transport is not None:
            size += layer._transport.get_write_buffer_size()
        return size

    def write(self, data):
        if data.__class__ is not bytes:
            data = check_data(data)
        if data:
            self._layer._write(data)

    def write_eof(self):
        raise NotImplementedError("SSL doesn't support half-closes")  # [T5]

    def can_write_eof(self):
        return False

    def __del__(self, _warn=warnings.warn):
        # Only warn, as asyncio's does: while the connection is open the loop
        # holds the stream transport beneath, which holds us, so we are
        # collected only once the loop released it (reactor.net._transports [X6]);
        # abort() would call_soon() on a closed loop, perhaps from another thread.
        if not getattr(self, "_closed", True):
            self._closed = True
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)


class _TLSLayer(asyncio.Protocol):
    """The stream transport's protocol: the TLS state machine."""

    max_size = 256 * 1024

    def __init__(
        self,
        loop,
        app_protocol,
        context,
        server_side,
        server_hostname,
        handshake_timeout,
        on_error,
        on_done,
        server,
    ):
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext, not {type(context).__name__}")
        self._loop = loop
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._server_side = server_side
        self._state = _HANDSHAKE
        self._transport = None
        self._extra = {"sslcontext": context}
        self._app_transport = TLSTransport(self)
        self._set_app_protocol(app_protocol)
        self._app_connected = False
        self._app_eof_called = False
        self._app_reading_paused = False
        self._handshake_timeout = handshake_timeout
        self._timer = None
        self._on_error = on_error
        self._on_done = on_done
        self._server = server
        self._lost_writes = 0
        if server is not None:  # [T6] handshaking connections are the server's too
            server._attach(self._app_transport)

    def _set_app_protocol(self, protocol):
        self._app_protocol = protocol
        self._app_buffered = isinstance(protocol, asyncio.BufferedProtocol)

    # -- the stream transport's protocol ----------------------------------------

    def connection_made(self, transport):
        self._transport = transport
        if self._state != _HANDSHAKE:  # aborted before the socket was ready
            transport.abort()
            return
        self._timer = self._loop.call_later(self._handshake_timeout, self._handshake_timed_out)
        self._do_handshake()

    def data_received(self, data):
        self._incoming.write(data)
        state = self._state
        if state == _WRAPPED:
            self._read_pending()
        elif state == _HANDSHAKE:
            self._do_handshake()
        elif state == _SHUTDOWN:
            self._discard_pending()
            self._do_shutdown()

    def eof_received(self):
        if self._state == _HANDSHAKE:
            self._handshake_failed(
                ConnectionResetError("Connection lost during the TLS handshake")
            )
        elif self._state == _WRAPPED:
            self._read_pending()
            if self._state == _WRAPPED:  # the peer closed without close_notify
                self._app_eof()
                self._state = _SHUTDOWN
                self._flush()
        return False  # the stream transport closes [T4]

    def connection_lost(self, exc):
        self._cancel_timer()
        state, self._state = self._state, _CLOSED
        self._app_transport._closed = True
        if state == _HANDSHAKE:
            self._report_handshake_error(
                exc
                if exc is not None
                else ConnectionResetError("Connection lost during the TLS handshake")
            )
        elif self._app_connected:
            self._app_connected = False
            call_reporting(self._loop, self._app_protocol.connection_lost, exc)
        server, self._server = self._server, None
        if server is not None:
            server._detach(self._app_transport)
        self._transport = None

    def pause_writing(self):
        if self._app_connected:
            call_reporting(self._loop, self._app_protocol.pause_writing)

    def resume_writing(self):
        if self._app_connected:
            call_reporting(self._loop, self._app_protocol.resume_writing)

    # -- handshake ---------------------------------------------------------------

    def _do_handshake(self):
        try:
            self._sslobj.do_handshake()
        except _AGAIN:
            self._flush()  # [T1]
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._flush()  # the alert [T3]
            self._handshake_failed(exc)
            return
        self._flush()
        self._cancel_timer()
        sslobj = self._sslobj
        self._state = _WRAPPED
        self._extra.update(
            peercert=sslobj.getpeercert(),
            cipher=sslobj.cipher(),
            compression=sslobj.compression(),
            ssl_object=sslobj,
        )
        self._app_connected = True
        if self._on_done is not None:  # before connection_made(), which may raise
            self._on_done(self._app_transport)
        protocol = self._app_protocol
        try:
            protocol.connection_made(self._app_transport)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.connection_made)
            return
        if self._state == _WRAPPED:
            self._read_pending()  # application data that came with the handshake

    def _handshake_timed_out(self):
        self._timer = None
        if self._state == _HANDSHAKE:
            self._handshake_failed(
                ConnectionAbortedError(
                    f"SSL handshake is taking longer than {self._handshake_timeout} seconds: "
                    "aborting the connection"
                ),
                abort=True,
            )

    def _handshake_failed(self, exc, abort=False):
        self._state = _CLOSED
        self._cancel_timer()
        transport = self._transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()  # after the alert went out [T3]
        self._report_handshake_error(exc)

    def _report_handshake_error(self, exc):
        on_error, self._on_error = self._on_error, None
        if on_error is None:
            return  # reported already
        if self._server_side:
            peer = self._transport.get_extra_info("peername") if self._transport else None
            on_error(exc, f"the TLS handshake with {peer!r}")
        else:
            on_error(exc)

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- reading -----------------------------------------------------------------

    def _read_pending(self):
        """Decrypt what the incoming BIO holds and hand it to the application."""
        state = self._state
        if state == _SHUTDOWN:
            self._discard_pending()
            return
        if state != _WRAPPED or self._app_reading_paused:
            return
        if self._app_buffered:
            closed = self._read_into_app_buffer()
        else:
            closed = self._read_copied()
        self._flush()
        if closed and self._state == _WRAPPED:  # the peer's close_notify
            self._app_eof()
            self._start_shutdown()

    def _read_copied(self):
        chunks = []
        closed = False
        try:
            while True:
                chunk = self._sslobj.read(self.max_size)
                if not chunk:
                    closed = True
                    break
                chunks.append(chunk)
        except _AGAIN:
            pass
        except ssl.SSLError as exc:
            self._fatal_error(exc, "reading TLS data")
            return False
        if chunks and self._state == _WRAPPED:
            protocol = self._app_protocol
            try:
                protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, protocol.data_received)
                return False
        return closed

    def _read_into_app_buffer(self):
        protocol = self._app_protocol
        while self._state == _WRAPPED and not self._app_reading_paused:
            try:
                buf = protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, protocol.get_buffer)
                return False
            try:
                count = self._sslobj.read(len(buf), buf)
            except _AGAIN:
                return False
            except ssl.SSLError as exc:
                self._fatal_error(exc, "reading TLS data")
                return False
            if not count:
                return True
            try:
                protocol.buffer_updated(count)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, protocol.buffer_updated)
                return False
        return False

    def _discard_pending(self):
        """After our close_notify, what the peer still sends is read and
        dropped, so that its close_notify can be seen [T4]."""
        try:
            while self._sslobj.read(self.max_size):
                pass
        except (ssl.SSLError, ssl.CertificateError):
            pass

    def _app_eof(self):
        """eof_received() for the application, once: when the peer's
        close_notify (or FIN) arrives, and, as asyncio does, when a shutdown
        we started completes."""
        if self._app_eof_called or not self._app_connected:
            return
        self._app_eof_called = True
        protocol = self._app_protocol
        try:
            keep_open = protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.eof_received)
            return
        if keep_open:
            logger.warning("returning true from eof_received() has no effect when using ssl")

    # -- writing -----------------------------------------------------------------

    def _write(self, data):
        if self._state != _WRAPPED:
            if self._lost_writes >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("SSL connection is closed")
            self._lost_writes += 1
            return
        view = memoryview(data)
        try:
            while view:
                view = view[self._sslobj.write(view) :]
        except ssl.SSLError as exc:
            self._fatal_error(exc, "writing TLS data")
            return
        self._flush()  # [T2]

    def _flush(self):
        data = self._outgoing.read()
        if data and self._transport is not None:
            self._transport.write(data)

    # -- closing -----------------------------------------------------------------

    def _start_shutdown(self):
        if self._state == _HANDSHAKE:
            self._abort(None)
            return
        if self._state != _WRAPPED:
            return
        self._state = _SHUTDOWN
        self._app_transport._closed = True
        self._timer = self._loop.call_later(SHUTDOWN_TIMEOUT, self._shutdown_timed_out)
        if self._transport is not None:
            self._transport.resume_reading()  # the peer's close_notify must come in [T4]
        self._do_shutdown()

    def _do_shutdown(self):
        try:
            self._sslobj.unwrap()
        except _AGAIN:
            self._flush()  # our close_notify; the peer's is still to come
            return
        except ssl.SSLError:
            pass  # the peer broke off: nothing more to say
        else:
            self._app_eof()
        self._flush()
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    def _shutdown_timed_out(self):
        self._timer = None
        if self._state == _SHUTDOWN and self._transport is not None:
            self._transport._force_close(TimeoutError("SSL shutdown timed out"))

    def abort(self):
        """Stop the handshake (a cancelled connection): nothing is reported."""
        self._on_error = None
        self._abort(None)

    def _abort(self, exc):
        self._app_transport._closed = True
        if self._state == _HANDSHAKE:
            self._on_error = None  # closed by us [T6]: no failure to report
        if self._transport is not None:
            self._transport._force_close(exc)
        elif self._state == _HANDSHAKE:
            self._state = _CLOSED  # connection_made() will abort the stream transport

    def _fatal_error(self, exc, where):
        if not isinstance(exc, OSError):
            self._loop.handle_exception(exc, where)
        self._abort(exc)
