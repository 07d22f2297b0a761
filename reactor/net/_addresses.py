"""What the setup calls share: asyncio's checks of their arguments, and its
way of resolving an address.

Facts this module relies on:

[R1] getaddrinfo() for a name may block for seconds (DNS), so an outgoing
     connection resolves names in a worker thread (reactor.net._connect).  A
     host that is already an IP address, with a numeric port, is turned into
     its addrinfo without getaddrinfo(), by asyncio's rules
     (base_events._ipaddr_info), so that a bad port fails where and as it
     fails there: at bind() or connect(), with OverflowError.
"""

from __future__ import annotations

import socket

__all__ = [
    "numeric_addrinfo",
    "resolve",
    "check_tls_options",
    "check_stream_socket",
    "check_factory",
]


def numeric_addrinfo(host, port, family, kind, proto=0):
    """The one addrinfo for a host that is already an IP address, without
    getaddrinfo() [R1]; None for a name, a service name or a zone index.
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
    """getaddrinfo(), or the numeric shortcut; may block for a name [R1]."""
    info = numeric_addrinfo(host, port, family, kind, proto)
    if info is not None:
        return [info]
    return socket.getaddrinfo(host, port, family, kind, proto, flags)


def check_tls_options(ssl, ssl_handshake_timeout, server_side):
    if isinstance(ssl, bool) and server_side:
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl and not isinstance(ssl, bool):  # a falsy one means no TLS, as in asyncio
        import ssl as ssl_module

        if not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(
                f"ssl argument must be an SSLContext or None, not {type(ssl).__name__}"
            )
    if ssl_handshake_timeout is not None:
        # asyncio's two checks: a server's ssl must not be None, a client's
        # must be true.
        if (ssl is None) if server_side else (not ssl):
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl and ssl_handshake_timeout <= 0:
            raise ValueError(
                f"ssl_handshake_timeout should be a positive number, got {ssl_handshake_timeout}"
            )


def check_stream_socket(sock):
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")


def check_factory(protocol_factory):
    if not callable(protocol_factory):
        raise TypeError(
            f"protocol_factory must be callable, not {type(protocol_factory).__name__}"
        )
