"""Model 4, signal-driven IO (the chapter's 信号驱动IO).

Instead of asking (model 2) or waiting on a set of sockets (model 3), the
process tells the kernel "signal me when this socket is ready" and is told,
one signal per event.  The data is then copied by an ordinary recv(), which
does not wait.  The chapter's version installs a SIGIO handler; a plain
SIGIO cannot say which socket, so a server routes each socket to a
real-time signal that carries its fd, and reads the signals synchronously.

Facts this module relies on:

[SD1] fcntl(2) F_SETOWN / F_SETFL O_ASYNC: a socket with O_ASYNC signals its
     owner when it becomes readable (data, FIN, an incoming connection on a
     listening socket) or writable again.  accept(2) passes none of this
     (nor O_NONBLOCK) on to the new socket: each connection is set up anew.
[SD2] fcntl(2) F_SETSIG: with a real-time signal (signal(7): SIGRTMIN ...
     SIGRTMAX) every event is queued as its own signal, whose siginfo names
     the fd (si_fd) and the event (si_code POLL_IN, POLL_OUT, POLL_HUP).
     Plain SIGIO carries nothing and, as every standard signal, is pending
     at most once: it can only say "something, somewhere".
[SD3] The real-time queue is bounded: RLIMIT_SIGPENDING (getrlimit(2),
     signal(7)) caps the signals queued for the user.  When the kernel
     cannot queue the real-time signal it sends plain SIGIO instead
     (fs/fcntl.c, send_sigio_to_task(): "we fall back to SIGIO").  A SIGIO
     therefore means "events were lost": the server must try every socket,
     as a select() loop would (the rescan).  Standard signals are dequeued
     before real-time ones, so the rescan comes first.
[SD4] Signals are read, not handled: they are blocked (pthread_sigmask)
     before any socket gets O_ASYNC, so none interrupts anything, and read
     in batches from a signalfd(2).  Blocked first, always: the default
     action of SIGIO and of a real-time signal is to kill the process.
     SIGTERM and SIGINT come through the same signalfd: the stop.
[SD5] A signal is an edge: it is sent when a segment arrives, not while
     data waits.  Data that came before O_ASYNC was set raises none, so a
     new connection is read at once; and a recv() that fills the buffer may
     have left more behind, so it is repeated until one comes back short.
     A signal may be stale (for an fd closed since, or already drained):
     that costs a recv() that says EAGAIN.
[SD6] A socket whose send buffer was full signals POLL_OUT once the peer has
     read (net/core/stream.c: only after a send found no room), so a
     connection with a reply half sent waits for that, reading nothing.

Run: ``python -m reactor.models.signaldriven --port 0``.
"""

import errno
import fcntl
import os
import signal

from .. import _native
from . import _serve

ffi, lib = _native.ffi, _native.lib
IO_SIGNAL = signal.SIGRTMIN  # [SD2]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalFd:
    """signalfd(2) for `signals`; read() waits and returns [(signal, fd)]."""

    def __init__(self, signals, batch=256):
        wanted = ffi.new("int[]", list(signals))
        self.fd = lib.reactor_signalfd(-1, wanted, len(wanted), lib.SFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(-self.fd, os.strerror(-self.fd))
        self._batch = batch
        self._records = ffi.new("struct signalfd_siginfo[]", batch)
        self._signo = ffi.new("uint32_t[]", batch)
        self._fds = ffi.new("int32_t[]", batch)

    def read(self):
        while True:
            n = lib.reactor_signalfd_read(
                self.fd, self._records, self._batch, self._signo, self._fds
            )
            if n >= 0:
                return zip(ffi.unpack(self._signo, n), ffi.unpack(self._fds, n))
            if n != -errno.EINTR:
                raise OSError(-n, os.strerror(-n))

    def close(self):
        os.close(self.fd)


def route_to_signal(sock):
    """Readiness of `sock` becomes IO_SIGNAL, queued for us with its fd [S1, S2]."""
    sock.setblocking(False)
    fcntl.fcntl(sock, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(sock, lib.F_SETSIG, IO_SIGNAL)
    fcntl.fcntl(sock, fcntl.F_SETFL, os.O_NONBLOCK | os.O_ASYNC)


def serve(args):
    signal.pthread_sigmask(signal.SIG_BLOCK, {IO_SIGNAL, signal.SIGIO, *STOP_SIGNALS})  # [SD4]
    signals = SignalFd([IO_SIGNAL, signal.SIGIO, *STOP_SIGNALS])
    clients = {}  # fd -> [socket, bytes the kernel has not taken yet]
    counts = {"signals": 0, "rescans": 0}

    def accept_all(listener):
        while True:
            try:
                conn, address = listener.accept()
            except BlockingIOError:
                return
            route_to_signal(conn)
            clients[conn.fileno()] = [conn, b""]
            serve_client(conn.fileno())  # data may have come before O_ASYNC [SD5]

    def serve_client(fd):
        client = clients.get(fd)
        if client is None:  # a stale signal for an fd closed since [SD5]
            return
        conn, owed = client
        left = _serve.send_some(conn, owed) if owed else b""
        while left == b"":  # all sent: read what came
            try:
                data = conn.recv(_serve.RECV_SIZE)
            except BlockingIOError:  # EAGAIN: nothing more, or a stale signal [SD5]
                break
            except _serve.PEER_GONE:
                data = b""
            left = _serve.send_some(conn, args.reply(data)) if data else None
            if len(data) < _serve.RECV_SIZE:  # drained: the next segment signals [SD5]
                break
        if left is None:  # the client left
            del clients[fd]
            conn.close()
        else:
            client[1] = left  # when not all sent, POLL_OUT comes [SD6]

    try:
        with _serve.listen(args) as listener:
            route_to_signal(listener)
            accept_all(listener)
            while True:
                for signo, fd in signals.read():  # waits for signals
                    counts["signals"] += 1
                    if signo == IO_SIGNAL and fd == listener.fileno():
                        accept_all(listener)
                    elif signo == IO_SIGNAL:
                        serve_client(fd)
                    elif signo == signal.SIGIO:  # the queue overflowed: rescan [SD3]
                        counts["rescans"] += 1
                        accept_all(listener)
                        for fd in list(clients):
                            serve_client(fd)
                    else:
                        raise _serve.Stop(signal.Signals(signo).name)
    finally:
        _serve.log.info(
            "%(signals)d signals, %(rescans)d plain SIGIO (queue overflow: "
            "every socket rescanned)",
            counts,
        )
        for conn, owed in clients.values():
            conn.close()
        signals.close()


if __name__ == "__main__":
    raise SystemExit(_serve.main(serve, __doc__))
