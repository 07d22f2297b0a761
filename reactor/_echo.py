"""The IO-multiplexing chapter's exercise as a real server:
``python -m reactor echo``.

It answers each message with ``Your msg = <msg> ~~~`` and logs in the
chapter's format; ``--raw`` echoes the bytes unchanged (for benchmarks).
"""

import logging
import resource
import signal

from ._epoll import EpollSelector
from ._loop import Reactor
from ._poll import PollSelector
from ._select import SelectSelector
from ._tcp import Connection, TCPServer

CHAPTER_FORMAT = "%(asctime)s %(threadName)s %(thread)d %(message)s"
BACKENDS = {"epoll": EpollSelector, "poll": PollSelector, "select": SelectSelector}
WANTED_CONNECTIONS = 10_000
SPARE_FDS = 64  # listener, eventfd, signal socket, logging, stdio ...

log = logging.getLogger("reactor.echo")


def raise_fd_limit(wanted=WANTED_CONNECTIONS + SPARE_FDS):
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft
    limit, warning when it cannot hold `wanted` fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = wanted if hard == resource.RLIM_INFINITY else hard
        target = max(target, soft)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise RLIMIT_NOFILE from %d to %d: %s", soft, target, exc)
    if soft < wanted:
        log.warning("RLIMIT_NOFILE is %d (hard limit %s): this server can hold about %d "
                    "connections, not %d; raise the hard limit (ulimit -Hn) to hold more",
                    soft, hard, max(soft - SPARE_FDS, 0), WANTED_CONNECTIONS)
    return soft


def chapter_reply(connection, data):
    msg = "Your msg = {} ~~~".format(data.decode(errors="replace"))
    log.info(msg)
    connection.write(b"Your msg = " + data + b" ~~~")


def serve(host="127.0.0.1", port=9999, backend="epoll", raw=False,
          max_connections=None, idle_timeout=None, max_outbound=1 << 20):
    """Run the echo server until SIGINT or SIGTERM."""
    fd_limit = raise_fd_limit()
    if max_connections is None:
        max_connections = max(fd_limit - SPARE_FDS, 1)
    on_connect = on_close = None
    if not raw:
        def on_connect(connection):
            log.info("new client %s", connection.address)

        def on_close(connection):
            log.info("client %s closed", connection.address)

    with Reactor(BACKENDS[backend]()) as reactor:
        server = TCPServer(
            reactor, host, port,
            Connection.write if raw else chapter_reply,
            on_connect=on_connect, on_close=on_close,
            max_connections=max_connections, idle_timeout=idle_timeout,
            max_outbound=max_outbound)
        bound_host, bound_port = server.address[:2]
        for signum in (signal.SIGINT, signal.SIGTERM):
            reactor.add_signal_handler(signum, reactor.stop)
        log.info("reactor echo listening on %s:%d (backend %s, %s, at most %d connections)",
                 bound_host, bound_port, backend, "raw" if raw else "chapter replies",
                 max_connections)
        try:
            reactor.run()
        finally:
            server.close()
        log.info("stopped: %d connections refused over the maximum", server.refused)


def add_arguments(parser):
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=9999, help="port (0: any free port; default 9999)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="epoll")
    parser.add_argument("--raw", action="store_true",
                        help="echo bytes unchanged, no per-message logging (for benchmarks)")
    parser.add_argument("--max-connections", type=int, default=None,
                        help="refuse connections past this many (default: what RLIMIT_NOFILE allows)")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="close connections silent for this many seconds")
    parser.add_argument("--max-outbound", type=int, default=1 << 20,
                        help="bytes queued for a peer before we stop reading from it")


def main(args):
    logging.basicConfig(format=CHAPTER_FORMAT, level=logging.INFO)
    serve(args.host, args.port, args.backend, args.raw, args.max_connections,
          args.idle_timeout, args.max_outbound)
