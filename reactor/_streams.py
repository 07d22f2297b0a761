"""Stream sockets on the Reactor (TCP and Unix): asyncio's stream transport,
servers (create_server) and outgoing connections (create_connection),
callback-only: no futures, no coroutines.

The transport's meaning is asyncio's (reactor._transports, [X1]-[X5]); what
differs is only how a caller learns the outcome of a setup call:
create_server() returns a Server listening at once, and create_connection()
returns a handle at once and reports later, through the protocol's
connection_made() or through on_error(exc).

Facts this module relies on:

[S1] write() sends at once when nothing is queued and queues only what the
     kernel did not take (a partial send() is normal on a non-blocking
     socket); the queue drains on EVENT_WRITE.
[S2] recv() returning b"" is the peer's FIN.  eof_received() returning a
     true value keeps the connection half-open (we may still write, and
     read no more); otherwise the transport closes.  write_eof() shuts our
     side down (shutdown(SHUT_WR)) once the queue is sent.
[S3] A BufferedProtocol's get_buffer() is read into directly (recv_into):
     no bytes object per read.
[S4] A non-blocking connect() returns EINPROGRESS (EAGAIN for a Unix
     socket whose listener's backlog is full); the socket turns writable
     when the attempt ends, and SO_ERROR says how it ended.  Each resolved
     address is tried in order; when all fail, on_error gets the one error,
     or asyncio's "Multiple exceptions: ..." OSError.
[S5] getaddrinfo() for a name may block for seconds (DNS): names are
     resolved in a worker thread.  Numeric addresses are resolved inline with
     AI_NUMERICHOST | AI_NUMERICSERV, which never touches the network.
     create_server() resolves its host inline, once, before it listens.
[S6] accept(): one readiness event may stand for many queued connections:
     accept up to `backlog` per event.  EMFILE, ENFILE, ENOBUFS and ENOMEM
     leave the connection queued and the listener readable, so accepting
     pauses for ACCEPT_RETRY_DELAY instead of spinning (asyncio: 1 s).
[S7] host=None (or "") listens on every interface: where the kernel has
     IPv6, one AF_INET6 socket with IPV6_V6ONLY off accepts IPv4 too (dual
     stack: one socket, one port even when port=0); otherwise 0.0.0.0.
     asyncio opens one socket per family instead, each with its own port
     when port=0.  A named host listens on every address it resolves to.
[S8] TCP_NODELAY is set on every TCP connection (asyncio does): small
     writes go out at once instead of waiting for the peer's ACK.
[S9] A Unix server removes a stale socket file at its path before binding
     (a socket file left by a server that died), and removes its own file
     when closed, unless another one has replaced it since (Python 3.13's
     cleanup_socket).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat

from ._transports import SocketTransport, check_data

__all__ = ["StreamTransport", "Server", "ConnectHandle", "create_server",
           "create_connection", "create_unix_server", "create_unix_connection"]

_READ, _WRITE = 1, 2
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)
_RETRY = (-errno.EAGAIN, -errno.EINTR)  # a read for us that found nothing


class StreamTransport(SocketTransport):
    """asyncio's transport for a connected stream socket (TCP or Unix)."""

    __slots__ = ("_eof", "_read_eof", "_reading_started", "_buffered", "_read_size",
                 "_held")

    def __init__(self, loop, sock, protocol, extra=None, server=None, start=True):
        self._buffered = False
        self._read_size = self.max_size  # bytes asked of one recv()
        super().__init__(loop, sock, protocol, extra, server)
        self._buffer = bytearray()
        self._eof = False            # write_eof() was called
        self._read_eof = False       # the peer's FIN came and we stay open [S2]
        self._reading_started = False
        self._held = None  # bytes read for us while paused (reactor._loop [L11])
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # [S8]
        if start:
            loop.call_soon(protocol.connection_made, self)   # [X1]
            loop.call_soon(self._start_reading)

    def set_protocol(self, protocol):
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        super().set_protocol(protocol)
        self._update_autoread()

    @property
    def _reads_for_it(self):
        # The loop's reads ask for its chunk (256 KiB): not for a transport
        # held to less (reactor._tcp's read_size), nor a buffered protocol.
        return not self._buffered and self._read_size >= self._loop._read_chunk

    def _set_read_size(self, size):
        """Ask at most `size` bytes of each recv()."""
        self._read_size = size
        self._update_autoread()

    def _start_reading(self):
        self._reading_started = True
        if not (self._closing or self._paused):
            self._set_interest(self._interest | _READ)

    # -- reading -----------------------------------------------------------------

    def is_reading(self):
        return not self._closing and not self._paused

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        self._set_interest(self._interest & ~_READ)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._held is not None:
            self._loop.call_soon(self._deliver_held)
        elif self._reading_started and not self._read_eof:
            self._set_interest(self._interest | _READ)

    def _deliver_held(self):
        """What the loop read for us while we were paused [L11] (b"" is the
        peer's EOF); then reading goes on."""
        held, self._held = self._held, None
        if held is None or self._conn_lost or self._closing:
            return
        for index, data in enumerate(held):
            if self._paused:  # paused again by the protocol: keep the rest
                self._held = held[index:]
                return
            if data:
                self._deliver(data)
            else:
                self._on_eof()
            if self._conn_lost or self._closing:
                return
        if self._paused:
            return
        if self._reading_started and not self._read_eof:
            self._set_interest(self._interest | _READ)

    def _data_read(self, data, mask):
        """The loop read `data` for us [L11]: _read_done()'s common case."""
        if self._paused or self._closing or self._held is not None:
            self._read_done(len(data), data, 0, mask)
            return
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

    def _read_done(self, nread, view, offset, mask):
        """The loop read `nread` bytes for us into view[offset:] (0: EOF,
        < 0: -errno) [L11]."""
        if nread > 0:
            data = view[offset:offset + nread]
            if self._paused or self._held is not None:
                if not self._closing:
                    self._hold(data)
            elif not self._closing:
                self._deliver(data)
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
        self._held.append(data)

    def _on_ready(self, fd, mask):
        if mask & _READ:
            if self._buffered:
                self._read_into_buffer()
            else:
                self._read_data()
        if mask & _WRITE and self._buffer:
            self._write_ready()

    def _read_data(self):
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
            self._deliver(data)
        else:
            self._on_eof()

    def _deliver(self, data):
        """Hand `data`, read from the socket, to the protocol."""
        protocol = self._protocol
        try:
            protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, protocol.data_received)  # [X4]

    def _read_into_buffer(self):  # [S3]
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

    def _on_eof(self):  # [S2]
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
        if data.__class__ is not bytes:
            data = check_data(data)
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._conn_lost:
            self._lost_write()
            return
        buffer = self._buffer
        if not buffer:  # [S1]
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, f"send() on {self!r}")
                return
            if sent == len(data):
                return
            buffer += memoryview(data)[sent:]
            self._set_interest(self._interest | _WRITE)
        else:
            buffer += data
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
            self._fatal_error(exc, f"send() on {self!r}")
            return
        if sent:
            del buffer[:sent]
        self._maybe_resume_protocol()  # it may write more
        if not buffer:
            self._set_interest(self._interest & ~_WRITE)
            if self._closing:
                self._conn_lost += 1
                self._call_connection_lost(None)  # [X1]
            elif self._eof:
                self._shutdown_write()

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._shutdown_write()

    def _shutdown_write(self):
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the peer reset meanwhile: the connection is over
            self._fatal_error(exc, f"shutdown() on {self!r}")

    def can_write_eof(self):
        return True

    def get_write_buffer_size(self):
        return len(self._buffer)


# -- servers ---------------------------------------------------------------------

class Server:
    """Listening sockets serving one protocol factory (asyncio's Server,
    without its coroutines)."""

    ACCEPT_RETRY_DELAY = 1.0  # [S6]

    def __init__(self, loop, sockets, protocol_factory, ssl_context=None, backlog=100,
                 ssl_handshake_timeout=None, unix_paths=()):
        self._loop = loop
        self._sockets = list(sockets)
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._backlog = backlog
        self._accepts_per_event = backlog  # [S6] asyncio takes the backlog
        self._unix_paths = list(unix_paths)  # (path, (st_dev, st_ino)) [S9]
        self._transports = set()
        self._serving = False
        self._watching = False  # the listening sockets are registered
        self._retry_timer = None

    def __repr__(self):
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    @property
    def sockets(self):
        """The listening sockets (empty once closed)."""
        return tuple(self._sockets)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    def _start_serving(self):
        for sock in self._sockets:
            sock.listen(self._backlog)
        self._watch()
        self._serving = True

    def _watch(self):
        for sock in self._sockets:
            self._loop._selector.register(sock, _READ, self._on_accept)
        self._watching = True

    def _unwatch(self):
        if self._watching:
            self._watching = False
            for sock in self._sockets:
                self._loop._selector.unregister(sock)

    def _on_accept(self, listener, mask):
        for _ in range(self._accepts_per_event):  # [S6]
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                self._loop.handle_exception(exc, f"accept() on {listener!r} (out of "
                                            f"resources: accepting again in "
                                            f"{self.ACCEPT_RETRY_DELAY} s)")
                self._pause_accepting()
                return
            conn.setblocking(False)
            self._connection_made(conn, {"peername": address})

    def _connection_made(self, conn, extra):
        factory = self._protocol_factory
        try:
            protocol = factory()
        except (SystemExit, KeyboardInterrupt):
            conn.close()
            raise
        except BaseException as exc:
            conn.close()
            self._loop.handle_exception(exc, factory)
            return
        if self._ssl_context is None:
            StreamTransport(self._loop, conn, protocol, extra, server=self)
        else:
            from ._tls import start_tls
            start_tls(self._loop, conn, protocol, self._ssl_context, server_side=True,
                      extra=extra, server=self, handshake_timeout=self._ssl_handshake_timeout,
                      on_error=self._loop.handle_exception)

    def _pause_accepting(self):
        self._unwatch()
        self._retry_timer = self._loop.call_later(self.ACCEPT_RETRY_DELAY, self._resume_accepting)

    def _resume_accepting(self):
        self._retry_timer = None
        if self._serving:
            self._watch()

    def _attach(self, transport):
        self._transports.add(transport)

    def _detach(self, transport):
        self._transports.discard(transport)

    def close(self):
        """Stop listening and close the listening sockets; connections
        already accepted go on (close_clients() closes them)."""
        if not self._sockets:
            return
        self._serving = False
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if not self._loop.is_closed():
            self._unwatch()
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()
        for path, identity in self._unix_paths:  # [S9]
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == identity:
                    os.unlink(path)
            except OSError:
                pass

    def close_clients(self):
        """close() every connection this server accepted."""
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self):
        """abort() every connection this server accepted."""
        for transport in list(self._transports):
            transport.abort()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _check_tls_options(ssl, ssl_handshake_timeout, server_side):
    if isinstance(ssl, bool) and server_side:
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl and not isinstance(ssl, bool):  # a falsy one means no TLS, as in asyncio
        import ssl as ssl_module
        if not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl argument must be an SSLContext or None, not "
                            f"{type(ssl).__name__}")
    if ssl_handshake_timeout is not None:
        # asyncio's two checks: a server's ssl must not be None, a client's
        # must be true.
        if (ssl is None) if server_side else (not ssl):
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl and ssl_handshake_timeout <= 0:
            raise ValueError(f"ssl_handshake_timeout should be a positive number, "
                             f"got {ssl_handshake_timeout}")


def _check_stream_socket(sock):
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")


def _server_addresses(host, port, family, flags, dual_stack):
    """(family, type, proto, address) to listen on [S7]: what getaddrinfo()
    gives for each host, as asyncio takes it, except that for host None,
    where IPv6 works, one dual-stack "::" replaces the per-family list."""
    if host is None or host == "":
        hosts = [None]
    elif isinstance(host, str) or not hasattr(host, "__iter__"):
        hosts = [host]
    else:
        hosts = list(host)
    result = []
    for one in hosts:
        infos = resolve(one, port, family, socket.SOCK_STREAM, 0, flags)
        if one is None and dual_stack:
            wildcard = [info for info in infos if info[0] == socket.AF_INET6]
            if wildcard and _ipv6_works():
                infos = wildcard[:1]
        for af, kind, proto, _, address in infos:
            entry = (af, kind, proto, address)
            if entry not in result:
                result.append(entry)
    return result


def _ipv6_works():
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
        return True
    except OSError:
        return False


def create_server(loop, protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC,
                  flags=socket.AI_PASSIVE, sock=None, backlog=100, ssl=None,
                  reuse_address=None, reuse_port=None, ssl_handshake_timeout=None,
                  dual_stack=None):
    """A Server listening at once (see the module's facts [S5]-[S8]).

    `dual_stack` (default: True for host=None): one IPv6 socket for IPv4
    and IPv6 [S7]; False opens one socket per family, as asyncio does.
    """
    loop._check_open()
    _check_tls_options(ssl, ssl_handshake_timeout, server_side=True)
    _check_factory(protocol_factory)
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if reuse_address is None:
            reuse_address = True
        dual = dual_stack is not False and (host is None or host == "")
        addresses = _server_addresses(host, port, family, flags, dual)
        sockets = _bind_all(addresses, reuse_address, reuse_port, dual)
    else:
        if sock is None:
            raise ValueError("Neither host/port nor sock were specified")
        _check_stream_socket(sock)
        sockets = [sock]
    for one in sockets:
        one.setblocking(False)
    server = Server(loop, sockets, protocol_factory, ssl or None, backlog,
                    ssl_handshake_timeout)
    try:
        server._start_serving()
    except BaseException:
        server.close()
        raise
    return server


def _bind_all(addresses, reuse_address, reuse_port, dual):
    sockets = []
    try:
        for af, kind, proto, address in addresses:
            sock = socket.socket(af, kind, proto)
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                if not hasattr(socket, "SO_REUSEPORT"):
                    raise ValueError("reuse_port not supported by socket module")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, True)
            if af == socket.AF_INET6:
                # [S7] one socket for both families only where asked for.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, not dual)
            try:
                sock.bind(address)
            except OSError as err:
                raise OSError(err.errno, f"error while attempting to bind on address "
                                         f"{address!r}: {err.strerror.lower()}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def create_unix_server(loop, protocol_factory, path=None, *, sock=None, backlog=100,
                       ssl=None, ssl_handshake_timeout=None, cleanup_socket=True):
    """A Server on a Unix stream socket at `path`, listening at once [S9]."""
    loop._check_open()
    _check_tls_options(ssl, ssl_handshake_timeout, server_side=True)
    _check_factory(protocol_factory)
    unix_paths = []
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        path = os.fspath(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if path[0] not in (0, "\x00"):  # not Linux's abstract namespace
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)  # [S9]
                except FileNotFoundError:
                    pass
            sock.bind(path)
            if cleanup_socket and path[0] not in (0, "\x00"):
                st = os.stat(path)
                unix_paths.append((path, (st.st_dev, st.st_ino)))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
            raise
        except BaseException:
            sock.close()
            raise
    else:
        if sock is None:
            raise ValueError("path was not specified, and no sock specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
    sock.setblocking(False)
    server = Server(loop, [sock], protocol_factory, ssl or None, backlog,
                    ssl_handshake_timeout, unix_paths)
    try:
        server._start_serving()
    except BaseException:
        server.close()
        raise
    return server


def _check_factory(protocol_factory):
    if not callable(protocol_factory):
        raise TypeError(f"protocol_factory must be callable, not "
                        f"{type(protocol_factory).__name__}")


# -- outgoing connections --------------------------------------------------------

class ConnectHandle:
    """An outgoing connection being made: cancel() stops it.

    Once connected (and, with TLS, once the handshake is done) the
    protocol's connection_made(transport) is called; `transport` and
    `protocol` are set from then on.  A failure calls on_error(exc).
    """

    def __init__(self, loop, protocol_factory, ssl, server_hostname, handshake_timeout,
                 on_error, description):
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._handshake_timeout = handshake_timeout
        self._on_error = on_error
        self._description = description
        self._infos = []
        self._local_infos = None
        self._errors = []
        self._sock = None         # the socket whose connect() is in progress
        self._tls = None          # the TLS layer while its handshake runs
        self._cancelled = False
        self._done = False
        self.transport = None
        self.protocol = None

    def __repr__(self):
        state = ("cancelled" if self._cancelled else "done" if self._done
                 else "connecting")
        return f"<ConnectHandle {self._description} {state}>"

    def cancel(self):
        """Stop connecting: nothing more is called.  No effect once done."""
        if self._done or self._cancelled:
            return
        self._cancelled = True
        self._close_attempt()
        if self._tls is not None:
            self._tls.abort()
            self._tls = None

    def cancelled(self):
        return self._cancelled

    def done(self):
        """True once connected (or failed, or cancelled)."""
        return self._done or self._cancelled

    # -- resolving [S5] ----------------------------------------------------------

    def _resolve(self, host, port, family, proto, flags, local_addr):
        """Resolve (host, port), then local_addr, then connect [S5], in
        asyncio's order; whatever fails goes to on_error."""
        pending = [(host, port)]
        if local_addr is not None:
            pending.append(local_addr)
        results = []

        def resolved(infos, exc):
            if self._cancelled or self._done:
                return
            if exc is None and not infos:
                exc = OSError("getaddrinfo() returned empty list")
            if exc is not None:
                self._fail(exc)
                return
            results.append(infos)
            if len(results) < len(pending):
                lookup(pending[len(results)])
                return
            self._infos = list(results[0])
            self._local_infos = results[1] if local_addr is not None else None
            self._try_next()

        def lookup(address):
            try:
                one_host, one_port = address[:2]  # ValueError, TypeError as asyncio
                numeric = numeric_addrinfo(one_host, one_port, family, socket.SOCK_STREAM,
                                           proto)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # TypeError for a host that is no str...
                self._loop.call_soon(resolved, None, exc)
                return
            if numeric is not None:
                self._loop.call_soon(resolved, [numeric], None)
            else:
                self._loop._run_in_thread(
                    socket.getaddrinfo,
                    (one_host, one_port, family, socket.SOCK_STREAM, proto, flags), resolved)

        lookup(pending[0])

    # -- connecting [S4] ---------------------------------------------------------

    def _try_next(self):
        while self._infos:
            family, kind, proto, _, address = self._infos.pop(0)
            sock = None
            try:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                if self._local_infos is not None:
                    self._bind_local(sock, family)
                err = sock.connect_ex(address)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                self._errors.append(exc)
                continue
            except (SystemExit, KeyboardInterrupt):
                if sock is not None:
                    sock.close()
                raise
            except BaseException as exc:  # a bad address (OverflowError...): asyncio stops here
                if sock is not None:
                    sock.close()
                self._fail(exc)
                return
            if err == 0:
                self._connected(sock)
                return
            if err in _IN_PROGRESS:
                self._sock = sock
                self._address = address
                self._loop._selector.register(sock.fileno(), _WRITE, self._on_connect_ready)
                return
            sock.close()
            self._errors.append(OSError(err, f"Connect call failed {address}"))
        self._fail(_one_error(self._errors))

    def _bind_local(self, sock, family):
        errors = []
        for local_family, _, _, _, local_address in self._local_infos:
            if local_family != family:
                continue
            try:
                sock.bind(local_address)
                return
            except OSError as exc:
                errors.append(OSError(exc.errno, f"error while attempting to bind on "
                                      f"address {local_address!r}: {exc.strerror.lower()}"))
        if errors:
            raise errors[-1]
        raise OSError(f"no matching local address with family={family!r} found")

    def _on_connect_ready(self, fd, mask):
        sock, self._sock = self._sock, None
        self._loop._selector.unregister(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            sock.close()
            self._errors.append(OSError(err, f"Connect call failed {self._address}"))
            self._try_next()
        else:
            self._connected(sock)

    def _close_attempt(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            if not self._loop.is_closed():
                self._loop._selector.unregister(sock.fileno())
            sock.close()

    def _connected(self, sock):
        factory = self._protocol_factory
        try:
            protocol = factory()
        except (SystemExit, KeyboardInterrupt):
            sock.close()
            raise
        except BaseException as exc:
            sock.close()
            self._fail(exc)
            return
        self.protocol = protocol
        if self._ssl is None:
            self._done = True
            self.transport = StreamTransport(self._loop, sock, protocol)
        else:
            from ._tls import start_tls
            self._tls = start_tls(
                self._loop, sock, protocol, self._ssl, server_side=False,
                server_hostname=self._server_hostname,
                handshake_timeout=self._handshake_timeout,
                on_error=self._fail, on_done=self._tls_done)

    def _tls_done(self, transport):
        self._tls = None
        self._done = True
        self.transport = transport

    def _fail(self, exc):
        self._tls = None
        self._done = True
        self._close_attempt()
        on_error = self._on_error
        try:
            if on_error is None:
                self._loop.handle_exception(exc, self._description)
            else:
                on_error(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            self._loop.handle_exception(error, on_error)


def _one_error(errors):
    """asyncio's rule for reporting failed connection attempts [S4]."""
    if not errors:
        return OSError("no address to connect to")
    if len(errors) == 1 or all(str(exc) == str(errors[0]) for exc in errors):
        return errors[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


def numeric_addrinfo(host, port, family, kind, proto=0):
    """The one addrinfo for a host that is already an IP address, without
    getaddrinfo() [S5]; None for a name, a service name or a zone index.
    asyncio's rules (base_events._ipaddr_info), so that a bad port fails
    where and as it fails there (at bind() or connect())."""
    if host is None or proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    if kind == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif kind == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    if port is None or port == "" or port == b"":
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None  # a service name such as "http": getaddrinfo()
    if isinstance(host, bytes):
        host = host.decode("idna")
    if "%" in host:  # a zone index (fe80::1%eth0): getaddrinfo(); TypeError for a non-str
        return None
    families = [socket.AF_INET, socket.AF_INET6] if family == socket.AF_UNSPEC else [family]
    for af in families:
        try:
            socket.inet_pton(af, host)  # ValueError for a NUL: passed on, as asyncio
        except OSError:
            continue
        if af == socket.AF_INET6:
            return af, kind, proto, "", (host, port, 0, 0)
        return af, kind, proto, "", (host, port)
    return None


def resolve(host, port, family, kind, proto, flags):
    """getaddrinfo(), or the numeric shortcut; may block for a name [S5]."""
    info = numeric_addrinfo(host, port, family, kind, proto)
    if info is not None:
        return [info]
    return socket.getaddrinfo(host, port, family, kind, proto, flags)


def _check_client_tls(ssl, server_hostname, ssl_handshake_timeout, host):
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    _check_tls_options(ssl, ssl_handshake_timeout, server_side=False)
    if ssl is True:
        import ssl as ssl_module
        ssl = ssl_module.create_default_context()
    return ssl or None, server_hostname


def create_connection(loop, protocol_factory, host=None, port=None, *, sock=None,
                      local_addr=None, ssl=None, server_hostname=None,
                      ssl_handshake_timeout=None, on_error=None, family=0, proto=0,
                      flags=0):
    """Connect to host:port (or adopt the connected `sock`); see ConnectHandle."""
    loop._check_open()
    _check_factory(protocol_factory)
    if on_error is not None and not callable(on_error):
        raise TypeError(f"on_error must be callable, not {type(on_error).__name__}")
    ssl, server_hostname = _check_client_tls(ssl, server_hostname, ssl_handshake_timeout,
                                             host)
    description = f"create_connection({host!r}, {port!r})"
    handle = ConnectHandle(loop, protocol_factory, ssl, server_hostname,
                           ssl_handshake_timeout, on_error, description)
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        handle._resolve(host, port, family, proto, flags, local_addr)
    else:
        if sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        _check_stream_socket(sock)
        sock.setblocking(False)
        loop.call_soon(_adopt, handle, sock)
    return handle


def _adopt(handle, sock):
    if not handle.done():
        handle._connected(sock)


def create_unix_connection(loop, protocol_factory, path=None, *, sock=None, ssl=None,
                           server_hostname=None, ssl_handshake_timeout=None, on_error=None):
    """Connect to the Unix stream socket at `path` (or adopt `sock`)."""
    loop._check_open()
    _check_factory(protocol_factory)
    if on_error is not None and not callable(on_error):
        raise TypeError(f"on_error must be callable, not {type(on_error).__name__}")
    if ssl and server_hostname is None:
        raise ValueError("you have to pass server_hostname when using ssl")
    ssl, server_hostname = _check_client_tls(ssl, server_hostname, ssl_handshake_timeout,
                                             None if server_hostname is None else "")
    handle = ConnectHandle(loop, protocol_factory, ssl, server_hostname,
                           ssl_handshake_timeout, on_error,
                           f"create_unix_connection({path!r})")
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        path = os.fspath(path)
        handle._infos = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", path)]
        loop.call_soon(_start, handle)
    else:
        if sock is None:
            raise ValueError("no path and sock were specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
        loop.call_soon(_adopt, handle, sock)
    return handle


def _start(handle):
    if not handle.done():
        handle._try_next()
