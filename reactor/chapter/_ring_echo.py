"""The chapter's echo server on io_uring completions (the fifth model):
``serve(host, port, raw=...)``, for ``python -m reactor echo --backend uring``.

Where the readiness server (_echo.py) is told "this socket is readable" and
then calls recv() itself, this one hands the kernel whole operations and is
told when they are done, the data already copied:

* one multishot accept takes every connection;
* per connection, one recv at a time, whose buffer the kernel picks from a
  shared pool when data comes (ten thousand idle connections hold no
  buffer; on kernels before 5.19, without buffer pools, each connection
  gets a buffer of its own);
* the reply is a send (MSG_WAITALL: all of it) linked to the next recv:
  one SQE pair, and the recv starts when the send is done [U15].

Everything prepared during a batch of completions reaches the kernel in one
io_uring_enter [U2].  It answers exactly as the chapter's server does:
``Your msg = <msg> ~~~`` for each message received (logged in the chapter's
format), or with ``raw=True`` the bytes unchanged (for benchmarks), sent
straight from the pool buffer they were received into.

The per-message path uses the Ring's raw interface (callbacks taking the
kernel's (res, flags); SQE arguments built once per connection): an
Operation object per send and recv would cost more than the syscalls saved.

Run it from a checkout: ``python -m reactor.chapter._ring_echo --port 0 --raw``.
"""

from __future__ import annotations

import argparse
import collections
import errno
import logging
import signal
import socket

from .._loop import Reactor
from .._native import ffi, lib
from ..uring._bufring import BufferRing
from ..uring._ops import Operation
from ..uring._ring import Ring
from ._common import CHAPTER_FORMAT, SPARE_FDS, raise_fd_limit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["serve", "main", "RingEchoServer"]

READ_SIZE = 65536  # the readiness server's recv size
POOL_BUFFERS = 1024  # 64 MiB of receive buffers, shared by all connections

log = logging.getLogger("reactor.echo")

_prep = lib.reactor_ring_prep
_prep_ext = lib.reactor_ring_prep_ext
_OP_RECV, _OP_SEND = lib.IORING_OP_RECV, lib.IORING_OP_SEND
_LINK = lib.IOSQE_IO_LINK
_F_BUFFER, _BUFFER_SHIFT = lib.IORING_CQE_F_BUFFER, lib.IORING_CQE_BUFFER_SHIFT
# MSG_WAITALL: io_uring then sends it all, retrying a partial send itself;
# without it a short send would complete short and NOT break the link, and
# the linked recv would start before the rest was sent [U15].
_SEND_FLAGS = socket.MSG_NOSIGNAL | socket.MSG_WAITALL
_ECANCELED, _ENOBUFS = errno.ECANCELED, errno.ENOBUFS
_new_buffer = ffi.new_allocator(should_clear_after_alloc=False)


class _Connection:
    """One client: a recv in flight, or a send linked to the next recv."""

    __slots__ = (
        "server",
        "ring",
        "sock",
        "fd",
        "address",
        "buffer",
        "buffer_id",
        "reply",
        "at",
        "left",
        "sending",
        "closed",
        "recv_args",
        "on_received",
        "on_sent",
    )

    def __init__(self, server, sock, address):
        self.server = server
        self.ring = server.ring
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.buffer_id = None  # the pool buffer being sent from (raw)
        self.reply = None  # what keeps the reply's memory alive while it is sent
        self.at = None  # cdata pointer to what is left to send
        self.left = 0
        self.sending = False
        self.closed = False
        self.on_received = self.received  # bound once, not per message
        self.on_sent = self.sent
        if server.buffers is not None:
            self.buffer = None
            # POLL_FIRST: the kernel picks a buffer only once data came, so
            # ENOBUFS means "data, and the pool is dry" [U12]: an idle
            # connection never waits in `starved` (see give_back()).
            self.recv_args = (
                _OP_RECV,
                self.fd,
                ffi.NULL,
                0,
                0,
                0,
                ffi.NULL,
                lib.IORING_RECVSEND_POLL_FIRST,
                lib.IOSQE_BUFFER_SELECT,
                server.group,
            )
        else:  # no buffer pools: a buffer of its own
            self.buffer = _new_buffer("char[]", READ_SIZE)
            self.recv_args = (_OP_RECV, self.fd, self.buffer, READ_SIZE, 0, 0, ffi.NULL, 0, 0, 0)

    def receive(self):
        self.ring._start(_prep_ext, self.recv_args, self.on_received, None)

    def received(self, res, flags):
        server = self.server
        buffer_id = None
        if flags & _F_BUFFER:  # the kernel picked a pool buffer: ours until given back
            buffer_id = flags >> _BUFFER_SHIFT
            server.buffers._take(buffer_id)
        if self.closed:  # a CQE after the close (the shutdown's cancels)
            if buffer_id is not None:
                server.give_back(buffer_id)
            return
        if res <= 0:
            if buffer_id is not None:
                server.give_back(buffer_id)
            if res == -_ENOBUFS and not server.closing:
                server.starved_recv(self)  # data came, and every pool buffer is in use
            elif res == -_ECANCELED and self.sending is not False and not server.closing:
                pass  # the recv linked to a send that came up short: the rest is re-sent
            else:
                self.close()  # EOF (the peer's FIN), an error, or the shutdown
            return
        data = self.buffer if buffer_id is None else server.pointers[buffer_id]
        if server.closing:
            if buffer_id is not None:
                server.give_back(buffer_id)
            self.close()
            return
        if server.raw:
            self.buffer_id = buffer_id
            # The memory the send reads: the pool (a pointer into it owns
            # nothing) or the connection's own buffer.
            self.reply = self.buffer if buffer_id is None else server.buffers._pool
            self.send(data, res)
        else:
            message = ffi.unpack(data, res)
            if buffer_id is not None:
                server.give_back(buffer_id)
            log.info("Your msg = %s ~~~", message.decode(errors="replace"))
            reply = b"Your msg = " + message + b" ~~~"
            self.reply = ffi.from_buffer(reply)
            self.send(self.reply, len(reply))

    def send(self, at, n):
        """Send n bytes at `at`, linked to the next recv [U15].  The ring's
        record of the send holds self.reply, the memory `at` points into,
        until its CQE [U6], whatever happens to the connection meanwhile."""
        self.at, self.left, self.sending = at, n, True
        ring = self.ring
        if not ring._start_pair(
            _prep_ext,
            (_OP_SEND, self.fd, at, n, 0, _SEND_FLAGS, ffi.NULL, 0, _LINK, 0),
            self.on_sent,
            _prep_ext,
            self.recv_args,
            self.on_received,
            self.reply,
        ):
            # No room for a pair now: the send alone, the recv once it is done.
            ring._start(
                _prep, (_OP_SEND, self.fd, at, n, 0, _SEND_FLAGS), self.on_sent, self.reply
            )
            self.sending = None  # (None: no recv is linked to this send)

    def sent(self, res, flags):
        linked = self.sending is not None
        self.sending = False  # this send is over; a re-send of the rest sets it again
        if self.closed or res < 0 or self.server.closing:
            self.give_back_sent()
            self.close()  # ECONNRESET, EPIPE, or cancelled by the shutdown
            return
        if res < self.left:  # short although MSG_WAITALL: the link broke, send the rest
            self.send(self.at + res, self.left - res)
            return
        self.at = self.reply = None
        self.give_back_sent()
        if not linked:
            self.receive()

    def give_back_sent(self):
        """The pool buffer a raw reply was sent from goes back, once no send
        reads it."""
        if self.buffer_id is not None:
            buffer_id, self.buffer_id = self.buffer_id, None
            self.server.give_back(buffer_id)

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.sending is False:  # else the send's CQE gives the buffer back
            self.give_back_sent()
        self.at = self.reply = None
        self.on_received = self.on_sent = None  # (they made a cycle with self)
        self.sock.close()
        self.server.connection_closed(self)


class RingEchoServer:
    """The echo server's state; serve() runs it."""

    def __init__(
        self,
        reactor: Reactor,
        host: str,
        port: int,
        *,
        raw: bool,
        max_connections: Optional[int],
        backlog: int = 1024,
        provided_buffers: bool = True,
        group: int = 0,
    ) -> None:
        self.reactor = reactor
        self.raw = raw
        self.max_connections = max_connections
        self.connections: set[_Connection] = set()
        self.refused = 0
        self.closing = False
        self.starved: collections.deque[_Connection] = collections.deque()
        self.accepting: Optional[Operation] = None
        self.group = group
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.ring: Optional[Ring] = None
        self.buffers: Optional[BufferRing] = None
        self.pointers: list = []  # cdata pointer to each pool buffer
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(backlog)
            self.ring = Ring(reactor, 256)
            if provided_buffers:
                try:
                    self.buffers = BufferRing(self.ring, POOL_BUFFERS, READ_SIZE, group)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    log.info("no provided-buffer rings (Linux < 5.19): a buffer per connection")
                else:
                    base = self.buffers._pool
                    self.pointers = [base + i * READ_SIZE for i in range(POOL_BUFFERS)]
            self.accepting = self.ring.accept(self.sock, self.accepted, multishot=True)
        except BaseException:
            self.close()
            raise

    @property
    def address(self):
        return self.sock.getsockname()

    def accepted(self, op):
        try:
            fd = op.result()
        except OSError as exc:
            if self.closing:
                return
            # EMFILE & co. end the multishot accept: try again shortly.
            log.warning("accept failed (%s): accepting again in 0.1 s", exc)
            self.reactor.call_later(0.1, self._accept_again)
            return
        sock = socket.socket(fileno=fd)
        if self.closing:
            sock.close()
            return
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            self.refused += 1
            sock.close()
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            address = None if self.raw else sock.getpeername()
        except OSError:  # reset before we got to it
            sock.close()
            return
        connection = _Connection(self, sock, address)
        self.connections.add(connection)
        if not self.raw:
            log.info("new client %s", address)
        connection.receive()

    def _accept_again(self):
        if not self.closing and (self.accepting is None or self.accepting.done()):
            self.accepting = self.ring.accept(self.sock, self.accepted, multishot=True)

    def starved_recv(self, connection):
        """Data came for it and every pool buffer was taken (ENOBUFS, with
        POLL_FIRST [U12]).  If some came back since (in this batch of
        completions, say), try again now; otherwise wait for the next one
        given back: every taken buffer is, and each one given back lets the
        connection that waited longest try again.  Only connections with
        data wait here, so that try takes the buffer (or another recv did,
        which gives it back in turn): no wait goes unanswered."""
        if self.buffers.taken < self.buffers.count:
            connection.receive()
        else:
            self.starved.append(connection)

    def give_back(self, buffer_id):
        self.buffers.give_back(buffer_id)
        if self.starved and not self.closing:
            self.starved.popleft().receive()

    def connection_closed(self, connection):
        self.connections.discard(connection)
        if not self.raw:
            log.info("client %s closed", connection.address)

    def close(self):
        """Cancel every operation (their callbacks close the connections),
        then release the ring, the buffers and the listening socket [U8]."""
        self.closing = True
        if self.ring is not None:
            self.ring.close()  # the accept and every recv/send end here
            if self.buffers is not None:
                self.buffers.close()
        for connection in list(self.connections) + list(self.starved):
            connection.close()
        self.starved.clear()
        self.sock.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 9999,
    *,
    raw: bool = False,
    max_connections: int | None = None,
    provided_buffers: bool = True,
) -> None:
    """Run the io_uring echo server until SIGINT or SIGTERM; logs
    "reactor echo listening on HOST:PORT (backend uring, ...)" once ready."""
    fd_limit = raise_fd_limit(log)
    if max_connections is None:
        max_connections = max(fd_limit - SPARE_FDS, 1)
    with Reactor() as reactor:
        server = RingEchoServer(
            reactor,
            host,
            port,
            raw=raw,
            max_connections=max_connections,
            provided_buffers=provided_buffers,
        )
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                reactor.add_signal_handler(signum, reactor.stop)
            bound_host, bound_port = server.address[:2]
            log.info(
                "reactor echo listening on %s:%d (backend uring, %s, at most %d connections, %s)",
                bound_host,
                bound_port,
                "raw" if raw else "chapter replies",
                max_connections,
                "multishot accept"
                if server.ring is not None and server.ring.multishot_accept
                else "single-shot accepts",
            )
            reactor.run()
        finally:
            server.close()
        log.info("stopped: %d connections refused over the maximum", server.refused)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m reactor.chapter._ring_echo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument(
        "--no-provided-buffers",
        action="store_true",
        help="a buffer per connection instead of the shared pool",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(format=CHAPTER_FORMAT, level=logging.INFO)
    serve(
        args.host,
        args.port,
        raw=args.raw,
        max_connections=args.max_connections,
        provided_buffers=not args.no_provided_buffers,
    )


if __name__ == "__main__":
    main()
