"""Model 5, asynchronous IO (the chapter's 异步 IO), on io_uring.

The process hands the kernel a whole operation, "receive into this buffer",
and goes on; the kernel waits for the data *and* copies it, then posts a
completion, and only then does our callback run, with the bytes already
in the buffer.  Neither stage waits in our thread: not even the copy, which
models 1 to 4 all make inside their own recv().

The chapter names Linux's aio (io_submit, 2.6); that one is asynchronous
only for files opened with O_DIRECT and has no socket receive.  io_uring
(Linux 5.1) is the kernel's asynchronous interface for sockets and files:
reactor.Ring puts one next to a reactor.Reactor (see reactor/uring/).
Here every connection has one operation in flight at a time, a recv or the
send of its reply, and the listening socket one multishot accept; what the
callbacks of one loop iteration start reaches the kernel in one
io_uring_enter().

Run: ``python -m reactor.models.asynchronous --port 0``.
"""

import functools
import socket

import reactor

from . import _serve


def serve(args):
    clients = {}  # fd -> socket

    def accepted(op):
        try:
            fd = op.result()  # the kernel accepted: here is the connection
        except OSError as exc:
            if not ring.closed:  # EMFILE & co. end the multishot accept
                _serve.log.warning("accept failed: %s", exc)
            return
        clients[fd] = socket.socket(fileno=fd)
        receive(fd)

    def receive(fd):
        ring.recv(fd, _serve.RECV_SIZE, functools.partial(received, fd))

    def received(fd, op):
        try:
            data = op.result()  # already copied into our buffer
        except OSError:  # ECONNRESET, or ECANCELED by the stop
            data = b""
        if data and not ring.closed:
            send(fd, memoryview(args.reply(data)))
        else:
            clients.pop(fd).close()

    def send(fd, data):
        ring.send(fd, data, functools.partial(sent, fd, data))

    def sent(fd, data, op):
        try:
            n = op.result()
        except OSError:  # EPIPE, ECONNRESET, or ECANCELED by the stop
            n = -1
        if n < 0 or ring.closed:
            clients.pop(fd).close()
        elif n < len(data):  # a short send: the rest
            send(fd, data[n:])
        else:
            receive(fd)

    # Leaving the with closes the ring, which cancels every operation: each
    # callback then runs once more, with ECANCELED, and closes its client.
    with reactor.Reactor() as loop, reactor.Ring(loop) as ring, _serve.listen(args) as listener:
        ring.accept(listener, accepted, multishot=True)
        loop.run()


if __name__ == "__main__":
    raise SystemExit(_serve.main(serve, __doc__))
