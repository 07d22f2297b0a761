"""Servers on the Reactor: create_server() and create_unix_server() return a
Server listening at once (asyncio's Server, without its coroutines).

Facts this module relies on:

[V1] accept(): one readiness event may stand for many queued connections:
     accept up to `backlog` per event (at least one: asyncio's backlog=0
     accepts nothing and spins).  EMFILE, ENFILE, ENOBUFS and ENOMEM
     leave the connection queued and the listener readable, so accepting
     pauses for ACCEPT_RETRY_DELAY instead of spinning (asyncio: 1 s).
[V2] host=None (or "") listens on every interface: where the kernel has
     IPv6, one AF_INET6 socket with IPV6_V6ONLY off accepts IPv4 too (dual
     stack: one socket, one port even when port=0); otherwise 0.0.0.0.
     asyncio opens one socket per family instead, each with its own port
     when port=0.  A named host listens on every address it resolves to,
     resolved inline, once, before the call returns.
[V3] A Unix server removes a stale socket file at its path before binding
     (a socket file left by a server that died), and removes its own file
     when closed, unless another one has replaced it since (Python 3.13's
     cleanup_socket).
[V4] From Python 3.13 on, asyncio skips an address whose bind() fails with
     EADDRNOTAVAIL (a family the host has not enabled, bpo-30945) and raises
     OSError("could not bind on any address out of [...]") when no address
     is left, host=[] included; before 3.13 the first error is raised and
     host=[] gives a server without sockets.  We do what the running
     Python's asyncio does, and when addresses were skipped the OSError
     also carries their errno (asyncio's has none), so that a caller can
     still say "cannot assign requested address".
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys

from ._addresses import check_factory, check_stream_socket, check_tls_options, resolve
from ._streams import StreamTransport

__all__ = ["Server", "create_server", "create_unix_server"]

_READ = 1
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_SKIP_UNAVAILABLE = sys.version_info >= (3, 13)  # [V4]


class Server:
    """Listening sockets serving one protocol factory (asyncio's Server,
    without its coroutines)."""

    ACCEPT_RETRY_DELAY = 1.0  # [V1]

    def __init__(
        self,
        loop,
        sockets,
        protocol_factory,
        ssl_context=None,
        backlog=100,
        ssl_handshake_timeout=None,
        unix_paths=(),
    ):
        self._loop = loop
        self._sockets = list(sockets)
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._backlog = backlog
        self._accepts_per_event = 1  # from the backlog once listen() took it
        self._unix_paths = list(unix_paths)  # (path, (st_dev, st_ino)) [V3]
        self._transports = set()
        # Called with each accepted connection's transport once it ends,
        # TLS handshake or not (reactor.chapter._tcp gives its slot back [C3]).
        self._client_gone = None
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
        if self._sockets:
            # [V1] asyncio takes the backlog; at least one, or backlog=0
            # accepts nothing and the still-readable listener wakes the loop
            # forever.  Only now: listen() refuses a backlog that is not an
            # int as asyncio's does, and with no socket to listen on (host=[])
            # asyncio never looks at it.
            self._accepts_per_event = max(self._backlog, 1)
        self._watch()
        self._serving = True

    def _watch(self):
        for sock in self._sockets:
            self._loop.register(sock, _READ, self._on_accept)
        self._watching = True

    def _unwatch(self):
        if self._watching:
            self._watching = False
            for sock in self._sockets:
                self._loop.unregister(sock)

    def _on_accept(self, listener, mask):
        for _ in range(self._accepts_per_event):  # [V1]
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                self._loop.handle_exception(
                    exc,
                    f"accept() on {listener!r} (out of "
                    f"resources: accepting again in "
                    f"{self.ACCEPT_RETRY_DELAY} s)",
                )
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

            start_tls(
                self._loop,
                conn,
                protocol,
                self._ssl_context,
                server_side=True,
                extra=extra,
                server=self,
                handshake_timeout=self._ssl_handshake_timeout,
                on_error=self._loop.handle_exception,
            )

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
        if self._client_gone is not None:
            self._client_gone(transport)

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
        for path, identity in self._unix_paths:  # [V3]
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


def _server_addresses(host, port, family, flags, dual_stack):
    """(family, type, proto, address) to listen on [V2]: what getaddrinfo()
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


def create_server(
    loop,
    protocol_factory,
    host=None,
    port=None,
    *,
    family=socket.AF_UNSPEC,
    flags=socket.AI_PASSIVE,
    sock=None,
    backlog=100,
    ssl=None,
    reuse_address=None,
    reuse_port=None,
    ssl_handshake_timeout=None,
    dual_stack=None,
):
    """A Server listening at once ([V1]-[V3]).

    `dual_stack` (default: True for host=None): one IPv6 socket for IPv4
    and IPv6 [V2]; False opens one socket per family, as asyncio does.
    """
    loop._check_open()
    check_tls_options(ssl, ssl_handshake_timeout, server_side=True)
    check_factory(protocol_factory)
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
        check_stream_socket(sock)
        sockets = [sock]
    for one in sockets:
        one.setblocking(False)
    return _serving(
        Server(loop, sockets, protocol_factory, ssl or None, backlog, ssl_handshake_timeout)
    )


def _bind_all(addresses, reuse_address, reuse_port, dual):
    sockets, skipped = [], False
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
                # [V2] one socket for both families only where asked for.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, not dual)
            try:
                sock.bind(address)
            except OSError as err:
                if _SKIP_UNAVAILABLE and err.errno == errno.EADDRNOTAVAIL:  # [V4]
                    sockets.pop().close()
                    skipped = True
                    continue
                raise OSError(
                    err.errno,
                    f"error while attempting to bind on address "
                    f"{address!r}: {err.strerror.lower()}",
                ) from None
        if _SKIP_UNAVAILABLE and not sockets:  # [V4]
            message = (
                f"could not bind on any address out of {[address for *_, address in addresses]!r}"
            )
            raise OSError(errno.EADDRNOTAVAIL, message) if skipped else OSError(message)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def create_unix_server(
    loop,
    protocol_factory,
    path=None,
    *,
    sock=None,
    backlog=100,
    ssl=None,
    ssl_handshake_timeout=None,
    cleanup_socket=True,
):
    """A Server on a Unix stream socket at `path`, listening at once [V3]."""
    loop._check_open()
    check_tls_options(ssl, ssl_handshake_timeout, server_side=True)
    check_factory(protocol_factory)
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
                        os.remove(path)  # [V3]
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
    return _serving(
        Server(
            loop, [sock], protocol_factory, ssl or None, backlog, ssl_handshake_timeout, unix_paths
        )
    )


def _serving(server):
    """`server`, listening; or closed, and the error raised."""
    try:
        server._start_serving()
    except BaseException:
        server.close()
        raise
    return server
