"""The chapter's echo server on io_uring completions (the fifth model):
``serve(host, port, raw=...)``, for ``python -m reactor echo --backend uring``.

Where the readiness server (_echo.py) is told "this socket is readable" and
then calls recv() itself, this one hands the kernel whole operations and is
told when they are done: one multishot accept for every connection; per
connection one recv at a time, whose buffer the kernel picks from a shared
pool when data comes (so ten thousand idle connections hold no buffers),
then a send of the reply, then the next recv.  Everything prepared during
one loop iteration reaches the kernel in one io_uring_enter.

It answers exactly as the chapter's server does: ``Your msg = <msg> ~~~``
for each message received (logged in the chapter's format), or with
``raw=True`` the bytes unchanged (for benchmarks).

Run it from a checkout: ``python -m reactor._ring_echo --port 0 --raw``.
"""

from __future__ import annotations

import argparse
import collections
import errno
import logging
import resource
import signal
import socket

from ._loop import Reactor
from ._ring import BufferRing, Ring

__all__ = ["serve", "main"]

CHAPTER_FORMAT = "%(asctime)s %(threadName)s %(thread)d %(message)s"
READ_SIZE = 65536       # the readiness server's recv size
POOL_BUFFERS = 1024     # 64 MiB of receive buffers, shared by all connections
SPARE_FDS = 64          # listener, ring, eventfd, signal socket, logging, stdio ...

log = logging.getLogger("reactor.echo")


def _raise_fd_limit():
    """Soft RLIMIT_NOFILE up to the hard limit; the limit we got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise RLIMIT_NOFILE from %d: %s", soft, exc)
    return soft


class _Connection:
    """One client: a recv in flight, or a send of what the last one got."""

    __slots__ = ("server", "sock", "fd", "address", "buffer_id", "pending", "closed")

    def __init__(self, server, sock, address):
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.buffer_id = None  # the pool buffer the reply is sent from (raw)
        self.pending = None    # what is still to be sent
        self.closed = False

    def receive(self):
        server = self.server
        if server.buffers is not None:
            server.buffers.recv(self.fd, self.received)
        else:  # no buffer rings (before 5.19): a buffer of its own
            server.ring.recv(self.fd, READ_SIZE, self.received)

    def received(self, op):
        server = self.server
        try:
            value = op.result()
        except OSError as exc:
            if exc.errno == errno.ENOBUFS and not server.closing:
                server.starved_recv(self)
            else:
                self.close()
            return
        if server.buffers is not None:
            buffer_id, n = value
            data = server.buffers.view(buffer_id, n) if n else b""
        else:
            buffer_id, data = None, value
        if not data:  # the peer's FIN: nothing is owed while a recv runs
            if buffer_id is not None:
                server.give_back(buffer_id)
            self.close()
            return
        if server.raw:
            self.buffer_id = buffer_id  # sent straight from the pool buffer
            reply = data
        else:
            message = bytes(data)
            if buffer_id is not None:
                server.give_back(buffer_id)
            log.info("Your msg = %s ~~~", message.decode(errors="replace"))
            reply = b"Your msg = " + message + b" ~~~"
        if server.closing:
            self.close()
            return
        self.pending = memoryview(reply)
        server.ring.send(self.fd, self.pending, self.sent)

    def sent(self, op):
        server = self.server
        try:
            n = op.result()
        except OSError:
            self.close()  # ECONNRESET, EPIPE, or cancelled by the shutdown
            return
        pending = self.pending[n:]
        if server.closing:
            self.close()
        elif pending:  # a short send: the rest
            self.pending = pending
            server.ring.send(self.fd, pending, self.sent)
        else:
            self.pending = None
            if self.buffer_id is not None:
                buffer_id, self.buffer_id = self.buffer_id, None
                server.give_back(buffer_id)
            self.receive()

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.buffer_id is not None:
            buffer_id, self.buffer_id = self.buffer_id, None
            self.server.give_back(buffer_id)
        self.pending = None
        self.sock.close()
        self.server.connection_closed(self)


class RingEchoServer:
    """The echo server's state; serve() runs it."""

    def __init__(self, reactor, host, port, *, raw, max_connections, backlog=1024,
                 provided_buffers=True):
        self.reactor = reactor
        self.raw = raw
        self.max_connections = max_connections
        self.connections: set[_Connection] = set()
        self.refused = 0
        self.closing = False
        self.starved: collections.deque[_Connection] = collections.deque()
        self.accepting = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.ring = None
        self.buffers = None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(backlog)
            self.ring = Ring(reactor, 256)
            if provided_buffers:
                try:
                    self.buffers = BufferRing(self.ring, POOL_BUFFERS, READ_SIZE)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    log.info("no provided-buffer rings (Linux < 5.19): a buffer per recv")
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
        """Its recv found every pool buffer taken (ENOBUFS).  If some came
        back since (in this batch of completions, say), try again now;
        otherwise wait for the next one given back: each taken buffer is."""
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


def serve(host: str = "127.0.0.1", port: int = 9999, *, raw: bool = False,
          max_connections: int | None = None, provided_buffers: bool = True) -> None:
    """Run the io_uring echo server until SIGINT or SIGTERM; logs
    "reactor echo listening on HOST:PORT (backend uring, ...)" once ready."""
    fd_limit = _raise_fd_limit()
    if max_connections is None:
        max_connections = max(fd_limit - SPARE_FDS, 1)
    with Reactor() as reactor:
        server = RingEchoServer(reactor, host, port, raw=raw, max_connections=max_connections,
                                provided_buffers=provided_buffers)
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                reactor.add_signal_handler(signum, reactor.stop)
            bound_host, bound_port = server.address[:2]
            log.info("reactor echo listening on %s:%d (backend uring, %s, at most %d "
                     "connections, %s)", bound_host, bound_port,
                     "raw" if raw else "chapter replies", max_connections,
                     "multishot accept" if server.ring.multishot_accept
                     else "single-shot accepts")
            reactor.run()
        finally:
            server.close()
        log.info("stopped: %d connections refused over the maximum", server.refused)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reactor._ring_echo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--no-provided-buffers", action="store_true",
                        help="a buffer per recv instead of the shared pool")
    args = parser.parse_args(argv)
    logging.basicConfig(format=CHAPTER_FORMAT, level=logging.INFO)
    serve(args.host, args.port, raw=args.raw, max_connections=args.max_connections,
          provided_buffers=not args.no_provided_buffers)


if __name__ == "__main__":
    main()
