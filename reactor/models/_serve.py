"""What every model's server shares: its command line, the listening
socket, the reply, and the stop on SIGTERM or SIGINT.

Every server is run as ``python -m reactor.models.<module> [--host HOST]
[--port PORT] [--chapter]``.  It listens on HOST:PORT (port 0: the system
picks one), logs ``listening on HOST:PORT`` to stderr once connections can
come (the runner and benchmarks/ read that line), echoes every byte back
unchanged (``--chapter``: answers each read with the chapter's ``Your msg =
<msg> ~~~`` and logs it in the chapter's format), and on SIGTERM or SIGINT
closes every socket and exits 0 after logging ``stopped``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from typing import Callable, Optional

from ..chapter._common import CHAPTER_FORMAT, raise_fd_limit
from ..chapter._echo import escape

RECV_SIZE = 16384  # bytes asked of each recv(); the chapter asks 1024
# The listen() queue: connections the kernel completes before we accept().
# 10,000 clients connecting at once overflow a short one, and each SYN the
# kernel then drops costs its client a 1 s retransmission.  (The kernel caps
# it at net.core.somaxconn, 4096 by default since Linux 5.4.)
BACKLOG = 4096
# A peer that closes with replies unread resets the connection: the normal
# end of a client (the load client leaves that way), not a server error.
PEER_GONE = (ConnectionResetError, BrokenPipeError)

log = logging.getLogger("reactor.models")

Reply = Callable[[bytes], bytes]


class Stop(SystemExit):
    """Raised by SIGTERM or SIGINT in the main thread: the server unwinds,
    closing what it holds on the way, and exits 0.  A SystemExit: the signal
    may land inside a Reactor callback, and the Reactor, as asyncio, reports
    every other exception of a callback (BaseException included) and carries
    on; SystemExit and KeyboardInterrupt leave the loop."""


def raw_reply(data: bytes) -> bytes:
    return data


def chapter_reply(data: bytes) -> bytes:
    log.info("Your msg = %s ~~~", escape(data.decode(errors="replace")))
    return b"Your msg = " + data + b" ~~~"


def listen(args: argparse.Namespace) -> socket.socket:
    """A listening TCP socket on args.host:args.port, announced."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    announce(sock.getsockname())
    return sock


def announce(address) -> None:
    log.info("listening on %s:%d", address[0], address[1])


def send_some(conn: socket.socket, data: bytes) -> Optional[bytes]:
    """Send what a non-blocking socket takes now: the bytes it did not
    take (b"" when it took them all), or None when the peer is gone."""
    try:
        sent = conn.send(data)
    except BlockingIOError:  # EWOULDBLOCK: its send buffer is full
        sent = 0
    except PEER_GONE:
        return None
    return data[sent:]


def _stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


def main(
    serve: Callable[[argparse.Namespace], None],
    doc: Optional[str],
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
    argv: Optional[list] = None,
) -> int:
    """Parse the command line, run serve(args) until SIGTERM or SIGINT."""
    module = sys.modules[serve.__module__].__spec__
    parser = argparse.ArgumentParser(
        prog=f"python -m {module.name if module else 'server'}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999, help="0: the system picks one")
    parser.add_argument(
        "--chapter",
        action="store_true",
        help="reply 'Your msg = <msg> ~~~' and log it, as the chapter does "
        "(default: echo the bytes unchanged)",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    args.reply = chapter_reply if args.chapter else raw_reply
    logging.basicConfig(format=CHAPTER_FORMAT, level=logging.INFO)
    raise_fd_limit(log)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    try:
        serve(args)
    except Stop as stop:
        log.info("stopped (%s)", stop)
    return 0
