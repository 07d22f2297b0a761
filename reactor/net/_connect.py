"""Outgoing connections on the Reactor: create_connection() and
create_unix_connection() return a handle at once and report later, through
the protocol's connection_made() or through on_error(exc).

Facts this module relies on:

[N1] A non-blocking connect() returns EINPROGRESS (or EINTR: it goes on
     in the kernel); the socket turns writable when the attempt ends, and
     SO_ERROR says how it ended.  EAGAIN is no attempt at all: a Unix
     socket's listener has its backlog full (for TCP, no ephemeral port is
     free), and the unconnected socket is writable at once; it fails that
     address, as libuv has it (asyncio waits, then reports a connection
     that does not exist).  Each resolved address is tried in order; when
     all fail, on_error gets the one error, or asyncio's "Multiple
     exceptions: ..." OSError.
[N2] Names are resolved in a worker thread (reactor.net._addresses [R1]): the
     loop never blocks on DNS.  The host first, then local_addr, as asyncio
     does, so that the same argument fails first.
[N3] Every outcome is reported once, in a later iteration than the call:
     connection_made() (after the TLS handshake, with ssl=), or on_error(exc)
     for a failure to resolve, bind, connect or handshake, whatever its
     type (also one raised after the connect: wrap_bio() refusing
     server_hostname); or nothing at all after cancel().  The handle is
     done() once connection_made() is called, even if it raises.
"""

from __future__ import annotations

import errno
import os
import socket

from ._addresses import check_factory, check_stream_socket, check_tls_options, numeric_addrinfo
from ._streams import StreamTransport

__all__ = ["ConnectHandle", "create_connection", "create_unix_connection"]

_WRITE = 2
_IN_PROGRESS = (errno.EINPROGRESS, errno.EINTR)  # not EAGAIN [N1]


class ConnectHandle:
    """An outgoing connection being made: cancel() stops it.

    Once connected (and, with TLS, once the handshake is done) the
    protocol's connection_made(transport) is called; `transport` and
    `protocol` are set from then on.  A failure calls on_error(exc).
    """

    def __init__(
        self,
        loop,
        protocol_factory,
        ssl,
        server_hostname,
        handshake_timeout,
        on_error,
        description,
    ):
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
        self._sock = None  # the socket whose connect() is in progress
        self._tls = None  # the TLS layer while its handshake runs
        self._cancelled = False
        self._done = False
        self.transport = None
        self.protocol = None

    def __repr__(self):
        state = "cancelled" if self._cancelled else "done" if self._done else "connecting"
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

    # -- resolving [N2] ----------------------------------------------------------

    def _resolve(self, host, port, family, proto, flags, local_addr):
        """Resolve (host, port), then local_addr, then connect [N2], in
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
                numeric = numeric_addrinfo(one_host, one_port, family, socket.SOCK_STREAM, proto)
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
                    (one_host, one_port, family, socket.SOCK_STREAM, proto, flags),
                    resolved,
                )

        lookup(pending[0])

    # -- connecting [N1] ---------------------------------------------------------

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
                self._loop.register(sock.fileno(), _WRITE, self._on_connect_ready)
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
                errors.append(
                    OSError(
                        exc.errno,
                        f"error while attempting to bind on "
                        f"address {local_address!r}: {exc.strerror.lower()}",
                    )
                )
        if errors:
            raise errors[-1]
        raise OSError(f"no matching local address with family={family!r} found")

    def _on_connect_ready(self, fd, mask):
        sock, self._sock = self._sock, None
        self._loop.unregister(fd)
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
                self._loop.unregister(sock.fileno())
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
        try:
            if self._ssl is None:
                self._done = True
                self.transport = StreamTransport(self._loop, sock, protocol)
            else:
                from ._tls import start_tls

                self._tls = start_tls(
                    self._loop,
                    sock,
                    protocol,
                    self._ssl,
                    server_side=False,
                    server_hostname=self._server_hostname,
                    handshake_timeout=self._handshake_timeout,
                    on_error=self._fail,
                    on_done=self._tls_done,
                )
        except (SystemExit, KeyboardInterrupt):
            sock.close()
            raise
        except BaseException as exc:  # [N3] wrap_bio() refusing server_hostname...
            sock.close()
            self._fail(exc)

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
    """asyncio's rule for reporting failed connection attempts [N1]."""
    if not errors:
        return OSError("no address to connect to")
    if len(errors) == 1 or all(str(exc) == str(errors[0]) for exc in errors):
        return errors[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


def _check_client_tls(ssl, server_hostname, ssl_handshake_timeout, host):
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    check_tls_options(ssl, ssl_handshake_timeout, server_side=False)
    if ssl is True:
        import ssl as ssl_module

        ssl = ssl_module.create_default_context()
    return ssl or None, server_hostname


def create_connection(
    loop,
    protocol_factory,
    host=None,
    port=None,
    *,
    sock=None,
    local_addr=None,
    ssl=None,
    server_hostname=None,
    ssl_handshake_timeout=None,
    on_error=None,
    family=0,
    proto=0,
    flags=0,
):
    """Connect to host:port (or adopt the connected `sock`); see ConnectHandle."""
    loop._check_open()
    check_factory(protocol_factory)
    if on_error is not None and not callable(on_error):
        raise TypeError(f"on_error must be callable, not {type(on_error).__name__}")
    ssl, server_hostname = _check_client_tls(ssl, server_hostname, ssl_handshake_timeout, host)
    description = f"create_connection({host!r}, {port!r})"
    handle = ConnectHandle(
        loop, protocol_factory, ssl, server_hostname, ssl_handshake_timeout, on_error, description
    )
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        handle._resolve(host, port, family, proto, flags, local_addr)
    else:
        if sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        check_stream_socket(sock)
        sock.setblocking(False)
        loop.call_soon(_adopt, handle, sock)
    return handle


def _adopt(handle, sock):
    if not handle.done():
        handle._connected(sock)


def create_unix_connection(
    loop,
    protocol_factory,
    path=None,
    *,
    sock=None,
    ssl=None,
    server_hostname=None,
    ssl_handshake_timeout=None,
    on_error=None,
):
    """Connect to the Unix stream socket at `path` (or adopt `sock`)."""
    loop._check_open()
    check_factory(protocol_factory)
    if on_error is not None and not callable(on_error):
        raise TypeError(f"on_error must be callable, not {type(on_error).__name__}")
    if ssl and server_hostname is None:
        raise ValueError("you have to pass server_hostname when using ssl")
    ssl, server_hostname = _check_client_tls(
        ssl, server_hostname, ssl_handshake_timeout, None if server_hostname is None else ""
    )
    handle = ConnectHandle(
        loop,
        protocol_factory,
        ssl,
        server_hostname,
        ssl_handshake_timeout,
        on_error,
        f"create_unix_connection({path!r})",
    )
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
