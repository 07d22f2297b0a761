"""Stream sockets on the Reactor (TCP and Unix): asyncio's stream transport.

Servers are in reactor.net._servers, outgoing connections in reactor.net._connect;
the transport's meaning is asyncio's (reactor.net._transports, [X1]-[X6]).

Facts this module relies on:

[ST1] write() sends at once when nothing is queued and queues only what the
     kernel did not take (a partial send() is normal on a non-blocking
     socket); the queue drains on EVENT_WRITE.
[ST2] recv() returning b"" is the peer's FIN.  eof_received() returning a
     true value keeps the connection half-open (we may still write, and
     read no more); otherwise the transport closes.  write_eof() shuts our
     side down (shutdown(SHUT_WR)) once the queue is sent.
[ST3] A BufferedProtocol's get_buffer() is read into directly (recv_into):
     no bytes object per read.  Bytes the Poller read before the protocol
     became a BufferedProtocol (set_protocol(), as start_tls() does while
     the peer's ClientHello is already in) are copied into its buffers.
[ST4] TCP_NODELAY is set on every TCP connection (asyncio does): small
     writes go out at once instead of waiting for the peer's ACK.  A socket
     that refuses it (one the peer has reset already) is served all the
     same: its bytes or its error come through the reads.  (asyncio lets the
     error escape the accept, and the accepted client is never served.)
[ST5] A message costs the loop's dispatch, data_received() and write():
     every check they make per message costs as much as the protocol's
     own code.  So the checks are made when the state changes instead
     (_update_fast_paths()): two attributes hold the protocol's data_received and
     the socket's send while the common case applies, None otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from asyncio import constants
from functools import partial

from ._transports import SocketTransport, check_data

__all__ = ["StreamTransport"]

_READ, _WRITE = 1, 2
_RETRY = (-errno.EAGAIN, -errno.EINTR)  # a read for us that found nothing


class StreamTransport(SocketTransport):
    """asyncio's transport for a connected stream socket (TCP or Unix)."""

    __slots__ = (
        "_eof",
        "_read_eof",
        "_buffered",
        "_read_size",
        "_held",
        "_fast_receive",
        "_fast_send",
        "_empty_waiter",
    )

    # asyncio's start_tls() and sendfile() may use this transport.
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(
        self, loop, sock, protocol, extra=None, server=None, start=True, waiter=None, context=None
    ):
        self._buffered = False
        self._read_size = self.max_size  # bytes asked of one recv()
        self._buffer = bytearray()
        self._eof = False  # write_eof() was called
        self._read_eof = False  # the peer's FIN came and we stay open [ST2]
        self._held = None  # bytes read for us while paused (reactor._poller [P4])
        self._fast_receive = self._fast_send = None  # see _update_fast_paths()
        self._empty_waiter = None  # asyncio's sendfile() waits for the buffer to drain
        super().__init__(loop, sock, protocol, extra, server, context)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # [ST4]
            except OSError:
                pass  # [ST4] a speed-up only: the connection works without it
        if start:
            self._start(waiter)

    def set_protocol(self, protocol):
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        super().set_protocol(protocol)
        self._update_autoread()
        self._update_fast_paths()

    def _update_fast_paths(self):
        """[ST5] Once per state change, not once per message: the protocol's
        data_received while bytes may go straight to it (reading, nothing
        held, not buffered), and the socket's send while a write may go
        straight to the kernel (nothing queued, no write_eof(), not lost);
        None otherwise, and the slow paths decide."""
        protocol, sock = self._protocol, self._sock
        if (
            self._paused
            or self._closing
            or self._held is not None
            or self._buffered
            or protocol is None
        ):
            self._fast_receive = None
        elif self._context is None:
            self._fast_receive = protocol.data_received
        else:  # [X7]
            self._fast_receive = partial(self._context.run, protocol.data_received)
        self._fast_send = (
            None
            if (
                self._buffer
                or self._eof
                or self._conn_lost
                or sock is None
                or self._empty_waiter is not None
            )
            else sock.send
        )

    @property
    def _reads_for_it(self):
        # Not for a buffered protocol, nor a transport held to less than
        # the wait's reads (reactor.chapter._tcp's read_size).
        return not self._buffered and self._loop._poller.can_read_for(self)

    def _set_read_size(self, size):
        """Ask at most `size` bytes of each recv()."""
        self._read_size = size
        self._update_autoread()

    # -- reading -----------------------------------------------------------------

    def _read_again(self):
        if self._held is not None:
            self._call_soon(self._pass_held)
        elif self._reading_started and not self._read_eof:
            self._set_interest(self._interest | _READ)

    def _pass_held(self):
        """What the Poller read for us while we were paused (reactor._poller [W4]) (b"" is the
        peer's EOF); then reading goes on."""
        held, self._held = self._held, None
        self._update_fast_paths()
        if held is None or self._conn_lost or self._closing:
            return
        for index, data in enumerate(held):
            if self._paused:  # paused again by the protocol: keep the rest
                self._held = held[index:]
                self._update_fast_paths()
                return
            if data:
                self._pass_to_protocol(data)
            else:
                self._on_eof()
            if self._conn_lost or self._closing:
                return
        if self._paused:
            return
        if self._reading_started and not self._read_eof:
            self._set_interest(self._interest | _READ)

    def _received(self, data, mask):
        """The Poller read `data` for us (reactor._poller [W2]), on its slow
        path: _read_result()'s common case, with _pass_to_protocol()
        inlined (once per message)."""
        if self._fast_receive is None:
            self._read_result(len(data), data, 0, mask)
            return
        # Not _fast_receive itself: we run in our context already (the
        # Poller enters it), which _fast_receive would enter again [X7].
        protocol = self._protocol
        try:
            protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.data_received)  # [X4]
            return
        if mask & _WRITE and self._buffer:
            self._write_ready()

    def _read_result(self, nread, view, offset, mask):
        """The Poller read `nread` bytes for us into view[offset:] (0: EOF,
        < 0: -errno) (reactor._poller [W2])."""
        if nread > 0:
            data = view[offset : offset + nread]
            if self._paused or self._held is not None:
                if not self._closing:
                    self._hold(data)
            elif not self._closing:
                self._pass_to_protocol(data)
        elif nread == 0:
            if self._paused or self._held is not None:
                self._hold(b"")
            elif not self._closing:
                self._on_eof()
        elif nread not in _RETRY and not self._conn_lost:
            self._fatal_error(OSError(-nread, os.strerror(-nread)), f"recv() on {self!r}")
            return
        if mask & _WRITE and self._buffer:
            self._write_ready()

    def _hold(self, data):
        if self._held is None:
            self._held = []
            self._update_fast_paths()
        self._held.append(data)

    def _on_ready(self, fd, mask):
        if mask & _READ:
            if self._buffered:
                self._read_into_buffer()
            else:
                self._recv()
        if mask & _WRITE and self._buffer:
            self._write_ready()

    def _recv(self):
        if self._conn_lost:
            return
        try:
            data = self._sock.recv(self._read_size)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, f"recv() on {self!r}")
            return
        if data:
            self._pass_to_protocol(data)
        else:
            self._on_eof()

    def _pass_to_protocol(self, data):
        """Hand `data`, read from the socket, to the protocol [ST3]."""
        protocol = self._protocol
        if self._buffered:
            self._feed_buffered(protocol, data)
            return
        try:
            protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, getattr(protocol, "data_received", None))  # [X4]

    def _feed_buffered(self, protocol, data):
        """`data` into a BufferedProtocol's buffers, as many as it takes,
        as asyncio feeds one; each step fails as in _read_into_buffer()
        [ST3]."""
        view = memoryview(data)
        while view:
            try:
                buf = memoryview(protocol.get_buffer(len(view))).cast("B")
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, protocol.get_buffer)  # [X4]
                return
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            try:
                protocol.buffer_updated(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, protocol.buffer_updated)  # [X4]
                return

    def _read_into_buffer(self):  # [ST3]
        if self._conn_lost:
            return
        protocol = self._protocol
        try:
            buf = protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.get_buffer)
            return
        try:
            nbytes = self._sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, f"recv_into() on {self!r}")
            return
        if not nbytes:
            self._on_eof()
            return
        try:
            protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.buffer_updated)

    def _on_eof(self):  # [ST2]
        protocol = self._protocol
        try:
            keep_open = protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.eof_received)
            return
        if keep_open:
            self._read_eof = True
            self._set_interest(self._interest & ~_READ)
        else:
            self.close()

    # -- writing -----------------------------------------------------------------

    def write(self, data):
        send = self._fast_send
        if send is None or data.__class__ is not bytes:  # [ST5] not the common case
            if data.__class__ is not bytes:
                data = check_data(data)
            if self._eof:
                raise RuntimeError("Cannot call write() after write_eof()")
            if self._empty_waiter is not None:
                raise RuntimeError("unable to write; sendfile is in progress")
            if not data:
                return
            if self._conn_lost:
                self._lost_write()
                return
            if self._buffer:  # [ST1]
                self._buffer += data
                self._maybe_pause_protocol()
                return
            send = self._sock.send
        try:
            sent = send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, f"send() on {self!r}")
            return
        if sent == len(data):
            return
        self._buffer += memoryview(data)[sent:]
        self._fast_send = None  # [ST5] something is queued
        self._set_interest(self._interest | _WRITE)
        self._maybe_pause_protocol()

    def _write_ready(self):
        if self._conn_lost:
            return
        buffer = self._buffer
        try:
            sent = self._sock.send(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            buffer.clear()
            self._set_interest(self._interest & ~_WRITE)
            if self._empty_waiter is not None:
                self._empty_waiter.set_exception(exc)
            self._fatal_error(exc, f"send() on {self!r}")
            return
        if sent:
            del buffer[:sent]
        self._maybe_resume_protocol()  # it may write more
        if not buffer:
            self._set_interest(self._interest & ~_WRITE)
            self._update_fast_paths()  # [ST5] nothing queued
            if self._empty_waiter is not None:
                self._empty_waiter.set_result(None)
            if self._closing:
                self._conn_lost += 1
                self._call_connection_lost(None)  # [X1]
            elif self._eof:
                self._shutdown_write()

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._eof = True
        self._fast_send = None  # [ST5]
        if not self._buffer:
            self._shutdown_write()

    def _shutdown_write(self):
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the peer reset meanwhile: the connection is over
            self._fatal_error(exc, f"shutdown() on {self!r}")

    def can_write_eof(self):
        return True

    # -- asyncio's sendfile() (base_events, selector_events) ---------------------

    @property
    def _sock_fd(self):
        return self._fd

    def _make_empty_waiter(self):
        """A future done once the write buffer is empty: asyncio's native
        sendfile() waits for it before it sends from the file."""
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._buffer:
            self._empty_waiter.set_result(None)
        self._fast_send = None  # [ST5] write() refuses meanwhile
        return self._empty_waiter

    def _reset_empty_waiter(self):
        self._empty_waiter = None
        self._update_fast_paths()

    def _call_connection_lost(self, exc):
        super()._call_connection_lost(exc)
        if self._empty_waiter is not None:
            self._empty_waiter.set_exception(ConnectionError("Connection is closed by peer"))

    def get_write_buffer_size(self):
        return len(self._buffer)
