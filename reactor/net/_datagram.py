"""Datagram sockets on the Reactor (UDP, Unix datagrams): asyncio's datagram
transport and create_datagram_endpoint(), callback-only.

Facts this module relies on:

[D1] Each recvfrom() is one datagram; a datagram longer than the buffer is
     cut (max_size, 256 KiB as asyncio; a UDP datagram carries at most
     65,507 bytes).  An OSError on a datagram socket (ECONNREFUSED from an
     ICMP port-unreachable after a send to a closed port, say) belongs to
     one datagram, not to the endpoint: it goes to error_received() and the
     transport stays open.
[D2] A connected datagram socket (remote_addr) sends with send(); sendto()
     then accepts only that address (or None).  allow_broadcast sets
     SO_BROADCAST and leaves the socket unconnected, as asyncio does.
[D3] sendto() sends at once when nothing is queued; what the kernel refuses
     for lack of buffer space (EAGAIN) is queued, as whole datagrams, and
     sent on EVENT_WRITE.  Flow control counts queued bytes ([X3]; from
     Python 3.13 asyncio adds 8 bytes of header per datagram, and sends
     empty datagrams, which 3.12 and older drop: we follow the running
     Python's asyncio).
[D4] An exception from datagram_received() or error_received() goes to
     loop.handle_exception() naming the method, and the endpoint stays
     open: asyncio does not abort a datagram transport for it either.
[D5] Names in local_addr and remote_addr are resolved inline (getaddrinfo),
     before the call returns (unlike create_connection()).
"""

from __future__ import annotations

import collections
import os
import socket
import stat
import sys

from ._addresses import resolve
from ._transports import SocketTransport, call_reporting, check_data

__all__ = ["DatagramTransport", "create_datagram_endpoint"]

_READ, _WRITE = 1, 2
_PY313 = sys.version_info >= (3, 13)  # [D3]
_HEADER = 8 if _PY313 else 0


class DatagramTransport(SocketTransport):
    """asyncio's datagram transport."""

    __slots__ = ("_address", "_buffer_size")

    def __init__(self, loop, sock, protocol, address=None, extra=None, waiter=None, context=None):
        super().__init__(loop, sock, protocol, extra, context=context)
        self._buffer = collections.deque()
        self._address = address
        self._buffer_size = 0
        self._start(waiter)

    def get_write_buffer_size(self):
        return self._buffer_size

    def _on_ready(self, fd, mask):
        if mask & _READ:
            self._read_ready()
        if mask & _WRITE and self._buffer:
            self._sendto_ready()

    def _read_ready(self):
        if self._conn_lost:
            return
        protocol = self._protocol
        try:
            data, address = self._sock.recvfrom(self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            call_reporting(self._loop, protocol.error_received, exc, transport=self)  # [D1]
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, f"recvfrom() on {self!r}")
            return
        call_reporting(
            self._loop, protocol.datagram_received, data, address, transport=self
        )  # [D4]

    def _send_one(self, data, addr):
        if self._extra["peername"]:  # connected [D2]
            self._sock.send(data)
        else:
            self._sock.sendto(data, addr)

    def sendto(self, data, addr=None):
        data = check_data(data)
        if not data and not _PY313:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and self._address:
            self._lost_write()
            return
        if not self._buffer:  # [D3]
            try:
                self._send_one(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._set_interest(self._interest | _WRITE)
            except OSError as exc:
                call_reporting(self._loop, self._protocol.error_received, exc, transport=self)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, f"sendto() on {self!r}")
                return
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data) + _HEADER
        self._maybe_pause_protocol()

    def _sendto_ready(self):
        buffer = self._buffer
        while buffer:
            data, addr = buffer.popleft()
            self._buffer_size -= len(data) + _HEADER
            try:
                self._send_one(data, addr)
            except (BlockingIOError, InterruptedError):
                buffer.appendleft((data, addr))
                self._buffer_size += len(data) + _HEADER
                break
            except OSError as exc:
                call_reporting(self._loop, self._protocol.error_received, exc, transport=self)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, f"sendto() on {self!r}")
                return
        self._maybe_resume_protocol()  # it may send more
        if not buffer:
            self._set_interest(self._interest & ~_WRITE)
            if self._closing:
                self._conn_lost += 1
                self._call_connection_lost(None)

    def _force_close(self, exc):
        self._buffer_size = 0
        super()._force_close(exc)


def create_datagram_endpoint(
    loop,
    protocol_factory,
    local_addr=None,
    remote_addr=None,
    *,
    family=0,
    proto=0,
    flags=0,
    reuse_port=None,
    allow_broadcast=None,
    sock=None,
):
    """(transport, protocol) for a datagram socket (asyncio's arguments and
    checks; names resolved inline [D5])."""
    loop._check_open()
    if not callable(protocol_factory):
        raise TypeError(
            f"protocol_factory must be callable, not {type(protocol_factory).__name__}"
        )
    remote = None
    if sock is not None:
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
        options = dict(
            local_addr=local_addr,
            remote_addr=remote_addr,
            family=family,
            proto=proto,
            flags=flags,
            reuse_port=reuse_port,
            allow_broadcast=allow_broadcast,
        )
        problems = ", ".join(f"{k}={v}" for k, v in options.items() if v)
        if problems:
            raise ValueError(
                f"socket modifier keyword arguments can not be used when sock "
                f"is specified. ({problems})"
            )
        sock.setblocking(False)
    else:
        sock, remote = _open_socket(
            _address_pairs(local_addr, remote_addr, family, proto, flags),
            local_addr,
            remote_addr,
            reuse_port,
            allow_broadcast,
        )
    try:
        protocol = protocol_factory()
    except BaseException:
        sock.close()
        raise
    transport = DatagramTransport(loop, sock, protocol, remote)
    return transport, protocol


def _address_pairs(local_addr, remote_addr, family, proto, flags):
    """((family, proto), (local, remote)) to try, asyncio's way."""
    if not (local_addr or remote_addr):
        if family == 0:
            raise ValueError("unexpected address family")
        return [((family, proto), (None, None))]
    if family == socket.AF_UNIX:
        for address in (local_addr, remote_addr):
            if address is not None and not isinstance(address, (str, bytes)):
                raise TypeError("string is expected")
        if local_addr and local_addr[0] not in (0, "\x00"):
            try:
                if stat.S_ISSOCK(os.stat(local_addr).st_mode):
                    os.remove(local_addr)  # a stale socket file, as for stream servers
            except FileNotFoundError:
                pass
        return [((family, proto), (local_addr, remote_addr))]
    by_family = {}
    for index, address in ((0, local_addr), (1, remote_addr)):
        if address is None:
            continue
        if not (isinstance(address, tuple) and len(address) == 2):
            raise TypeError("2-tuple is expected")
        infos = resolve(*address, family, socket.SOCK_DGRAM, proto, flags)
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        for af, _, pro, _, resolved in infos:
            by_family.setdefault((af, pro), [None, None])[index] = resolved
    pairs = [
        (key, pair)
        for key, pair in by_family.items()
        if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))
    ]
    if not pairs:
        raise ValueError("can not get address information")
    return pairs


def _open_socket(pairs, local_addr, remote_addr, reuse_port, allow_broadcast):
    errors = []
    for (af, pro), (local, remote) in pairs:
        sock = None
        try:
            sock = socket.socket(af, socket.SOCK_DGRAM, pro)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if allow_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setblocking(False)
            if local_addr:
                sock.bind(local)
            if remote_addr:
                if not allow_broadcast:
                    sock.connect(remote)  # [D2] a datagram connect() does not wait
                return sock, remote
            return sock, None
        except OSError as exc:
            if sock is not None:
                sock.close()
            errors.append(exc)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
    raise errors[0]
