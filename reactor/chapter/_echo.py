"""The IO-multiplexing chapter's exercise as a real server:
``python -m reactor echo``.

It answers each message with ``Your msg = <msg> ~~~`` and logs in the
chapter's format; ``--raw`` echoes the bytes unchanged (for benchmarks).
``--workers N`` runs N processes sharing the port (SO_REUSEPORT) under a
supervisor; ``--tls CERT KEY`` serves over TLS.

Facts this module relies on:

[CE1] Log lines carry the peer's bytes: a newline or an escape sequence in a
     message would forge a log line or rewrite the terminal (CWE-117).
     Characters that are not printable are written escaped (\\n, \\x1b,
     \\u2028), so one message is always one line.
[CE2] On SIGTERM or SIGINT the server stops accepting and closes each
     connection once its queued replies are sent; it exits 0 once every
     connection is gone, or after --drain-timeout seconds (aborting what is
     left).  A second signal stops at once.
[CE3] With --workers, each worker is a forked process with its own Reactor
     and its own listening socket on the same port (SO_REUSEPORT: the
     kernel spreads connections over them).  For --port 0 the supervisor
     first binds a port (SO_REUSEPORT, never listening, so it receives no
     connection) and the workers bind that one.  The supervisor waits for
     signals with sigwaitinfo(), restarts a worker that dies (at most once
     a second), and on SIGTERM/SIGINT passes SIGTERM on to the workers and
     exits 0 once all have drained and exited.
"""

import logging
import os
import signal
import socket
import sys
import time

BACKENDS = ("epoll", "poll", "select", "uring")
# What the io_uring server (reactor.chapter._ring_echo) does not offer.
_NOT_WITH_URING = ("tls", "workers", "idle_timeout", "max_outbound")

from ._common import CHAPTER_FORMAT, SPARE_FDS, raise_fd_limit  # noqa: E402

log = logging.getLogger("reactor.echo")

# `python -m reactor echo --help`: for users (the docstring above is for developers).
DESCRIPTION = """\
The IO-multiplexing chapter's echo server on the Reactor: it answers each
message with "Your msg = <msg> ~~~" and logs it, one line per message
(characters that are not printable are escaped).

SIGTERM or Ctrl-C stops accepting and lets queued replies go out for up to
--drain-timeout seconds; a second one stops at once.  --workers N runs N
processes on one port and restarts one that dies.

example: python -m reactor echo --port 9999, then nc 127.0.0.1 9999"""


class Failure(Exception):
    """A run-time failure the CLI reports as one line (exit status 1)."""


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text):
    """`text` with every character that is not printable escaped [CE1]."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def chapter_reply(connection, data):
    log.info("Your msg = %s ~~~", escape(data.decode(errors="replace")))
    connection.write(b"Your msg = " + data + b" ~~~")


def raw_reply(connection, data):
    connection.write(data)


def tls_context(cert, key):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise Failure(
            f"cannot load the TLS certificate {cert!r} and key {key!r}: {_reason(exc)}"
        ) from None
    return context


def _reason(exc):
    """The short reason of an OSError ("address already in use")."""
    if isinstance(exc, socket.gaierror) or not isinstance(exc, OSError) or not exc.errno:
        text = getattr(exc, "strerror", None) or str(exc)
    else:
        text = os.strerror(exc.errno)
    return text[:1].lower() + text[1:]


def _selector(backend):
    import reactor

    return {
        "epoll": reactor.EpollSelector,
        "poll": reactor.PollSelector,
        "select": reactor.SelectSelector,
    }[backend]()


def serve(
    host="127.0.0.1",
    port=9999,
    backend="epoll",
    raw=False,
    max_connections=None,
    idle_timeout=None,
    max_outbound=1 << 20,
    *,
    tls=None,
    reuse_port=False,
    drain_timeout=5.0,
    name="reactor echo",
):
    """Run the echo server until SIGINT or SIGTERM [CE2]."""
    from .._loop import Reactor
    from ._tcp import TCPServer

    fd_limit = raise_fd_limit(log)
    if max_connections is None:
        max_connections = max(fd_limit - SPARE_FDS, 1)
    context = tls_context(*tls) if tls else None

    def on_connect(connection):
        log.info("new client %s", connection.address)

    def on_close(connection):
        if not raw:
            log.info("client %s closed", connection.address)
        if stopping and not server.connections:
            reactor.stop()  # [CE2] the last connection drained

    stopping = []

    def stop():
        if stopping:  # a second signal: stop now
            reactor.stop()
            return
        stopping.append(True)
        server.close()
        if not server.connections:
            reactor.stop()
        reactor.call_later(drain_timeout, reactor.stop)

    with Reactor(_selector(backend)) as reactor:
        try:
            server = TCPServer(
                reactor,
                host,
                port,
                raw_reply if raw else chapter_reply,
                on_connect=None if raw else on_connect,
                on_close=on_close,
                max_connections=max_connections,
                idle_timeout=idle_timeout,
                max_outbound=max_outbound,
                ssl=context,
                reuse_port=reuse_port or None,
            )
        except OSError as exc:
            raise Failure(f"cannot listen on {host}:{port}: {_reason(exc)}") from None
        bound_host, bound_port = server.address[:2]
        for signum in (signal.SIGINT, signal.SIGTERM):
            reactor.add_signal_handler(signum, stop)
        log.info(
            "%s listening on %s:%d (backend %s, %s%s, at most %d connections)",
            name,
            bound_host,
            bound_port,
            backend,
            "raw" if raw else "chapter replies",
            ", TLS" if context else "",
            max_connections,
        )
        try:
            reactor.run()
        finally:
            server.close()
            for connection in list(server.connections):
                connection.abort()
            for _ in range(3):  # connection_lost() runs in an iteration of its own
                reactor.run_once(0)
        log.info("%s stopped: %d connections refused over the maximum", name, server.refused)


def supervise(workers, host, port, **options):
    """Run `workers` processes serving host:port [CE3]; returns the exit status."""
    reserved = None
    if port == 0:
        reserved = _reserve_port(host)
        port = reserved.getsockname()[1]
    signals = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    children = {}
    started = {}
    try:
        for index in range(workers):
            pid = _start_worker(index, host, port, options, signals)
            children[pid], started[pid] = index, time.monotonic()
        log.info("reactor echo supervisor: %d workers listening on %s:%d", workers, host, port)
        while True:
            info = signal.sigwaitinfo(signals)
            if info.si_signo in (signal.SIGTERM, signal.SIGINT):
                break
            for pid, status in _reap():
                index = children.pop(pid, None)
                if index is None:
                    continue
                log.warning(
                    "worker %d (pid %d) exited with status %d: starting another",
                    index,
                    pid,
                    os.waitstatus_to_exitcode(status),
                )
                pause = started.pop(pid) + 1.0 - time.monotonic()
                if pause > 0:  # a worker that dies at once must not make a fork loop
                    time.sleep(pause)
                new = _start_worker(index, host, port, options, signals)
                children[new], started[new] = index, time.monotonic()
        log.info("reactor echo supervisor: stopping %d workers", len(children))
        for pid in children:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + options.get("drain_timeout", 5.0) + 5.0
        while children and time.monotonic() < deadline:
            for pid, _status in _reap():
                children.pop(pid, None)
            if children:
                signal.sigtimedwait({signal.SIGCHLD}, 0.1)
        for pid in children:
            _kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        log.info("reactor echo supervisor: stopped")
        return 0
    finally:
        if reserved is not None:
            reserved.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def _reserve_port(host):
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise Failure(f"cannot listen on {host}:0: {_reason(exc)}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
    except OSError as exc:
        sock.close()
        raise Failure(f"cannot listen on {host}:0: {_reason(exc)}") from None
    return sock


def _start_worker(index, host, port, options, signals):
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        serve(host, port, reuse_port=True, name=f"reactor echo worker {index}", **options)
        status = 0
    except Failure as exc:
        print(f"reactor echo: worker {index}: {exc}", file=sys.stderr)
    except BaseException:  # a worker must never return into the supervisor's code
        logging.getLogger("reactor.echo").exception("worker %d failed", index)
    finally:
        logging.shutdown()
        os._exit(status)


def _reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def _kill(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


# -- the command line ----------------------------------------------------------------


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be 0-65535, not {value}")
    return value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError(f"must be >= 1, not {value}")
    return value


def _count(text):
    value = int(text)
    if value < 0:
        raise ValueError(f"must be >= 0, not {value}")
    return value


def _seconds(text):
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be a positive number of seconds, not {text}")
    return value


def _size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    multiplier = units.get(text[-1:].upper(), 1)
    value = int(text[:-1] if multiplier > 1 else text) * multiplier
    if value < 1:
        raise ValueError(f"must be >= 1, not {text}")
    return value


def _typed(function, name):
    """An argparse type whose error names the problem (argparse only says
    'invalid value' for a ValueError)."""
    import argparse

    def convert(text):
        try:
            return function(text)
        except ValueError as exc:
            reason = str(exc)
            if reason.startswith("invalid literal") or reason.startswith("could not convert"):
                reason = f"not a {name}"
            raise argparse.ArgumentTypeError(f"{text!r}: {reason}") from None

    convert.__name__ = name
    return convert


def add_arguments(parser):
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback)"
    )
    parser.add_argument(
        "--port",
        type=_typed(_port, "port"),
        default=9999,
        help="port (0: any free port; default 9999)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="epoll",
        help="the selector under the Reactor, or uring: io_uring completions "
        "(recv and send handed to the kernel; not with --tls, --workers, "
        "--idle-timeout, --max-outbound)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="echo bytes unchanged, no per-message logging (for benchmarks)",
    )
    parser.add_argument(
        "--max-connections",
        type=_typed(_count, "number"),
        default=None,
        help="refuse connections past this many (default: what RLIMIT_NOFILE allows)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_typed(_seconds, "number"),
        default=None,
        help="close connections silent for this many seconds",
    )
    parser.add_argument(
        "--max-outbound",
        type=_typed(_size, "size"),
        default=1 << 20,
        help="bytes queued for a peer before we stop reading from it "
        "(K, M, G suffixes; default 1M)",
    )
    parser.add_argument(
        "--workers",
        type=_typed(_positive_int, "number"),
        default=1,
        help="processes sharing the port (SO_REUSEPORT), under a supervisor "
        "that restarts a worker that dies (default 1: no supervisor)",
    )
    parser.add_argument(
        "--tls",
        nargs=2,
        metavar=("CERT", "KEY"),
        default=None,
        help="serve over TLS with this certificate chain and private key (PEM)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_typed(_seconds, "number"),
        default=5.0,
        help="on SIGTERM/SIGINT, seconds to let replies in flight go out (default 5)",
    )


def _serve_uring(args):
    """The chapter's echo on io_uring completions (reactor.chapter._ring_echo)."""
    from ..uring._probe import uring_available
    from ._ring_echo import serve as serve_uring

    defaults = {"tls": None, "workers": 1, "idle_timeout": None, "max_outbound": 1 << 20}
    given = [
        f"--{name.replace('_', '-')}"
        for name in _NOT_WITH_URING
        if getattr(args, name) != defaults[name]
    ]
    if given:
        print(f"reactor echo: --backend uring does not take {', '.join(given)}", file=sys.stderr)
        return 2
    available = uring_available()
    if not available:
        raise Failure(f"io_uring is not available here: {available.reason}")
    try:
        serve_uring(args.host, args.port, raw=args.raw, max_connections=args.max_connections)
    except OSError as exc:
        raise Failure(f"cannot listen on {args.host}:{args.port}: {_reason(exc)}") from None
    return 0


def main(args):
    """Run the echo CLI; returns the exit status (1 for a run-time failure,
    reported as one line)."""
    logging.basicConfig(format=CHAPTER_FORMAT, level=logging.INFO)
    options = dict(
        backend=args.backend,
        raw=args.raw,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        max_outbound=args.max_outbound,
        tls=args.tls,
        drain_timeout=args.drain_timeout,
    )
    try:
        if args.backend == "uring":
            return _serve_uring(args)
        if args.tls:
            tls_context(*args.tls)  # fail before forking, with one line
        if args.workers > 1:
            return supervise(args.workers, args.host, args.port, **options)
        serve(args.host, args.port, **options)
    except Failure as exc:
        print(f"reactor echo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
    return 0
