"""Model 3, IO multiplexing (the chapter's IO多路复用, "event-driven IO").

One call waits for many sockets at once and says which are ready; only
then does the loop recv() from them, and that recv() does not wait.  This
is the chapter's exercise, written as it is: callbacks stored as each key's
data, and ``for key, mask in selector.select(): key.data(key.fileobj, mask)``.

- ``--selector select``: select(2) takes bitmaps of every fd, copied in and
  out and scanned on every call.  The stdlib's SelectSelector refuses fds
  from 1024 (FD_SETSIZE) on; reactor's sizes its bitmaps to the highest fd.
- ``--selector poll``: poll(2) takes an array of every fd: no limit but
  RLIMIT_NOFILE, still copied and scanned on every call.
- ``--selector epoll`` (default): the interest list stays in the kernel,
  each socket puts itself on a ready list when data comes (the chapter's
  "callback"), and epoll_wait() copies out only the ready ones.
- ``--loop``: the same loop grown up, reactor.Reactor with the chapter's
  TCPServer(on_data): timers, signals, write buffering, all callbacks.

Run: ``python -m reactor.models.multiplexing [--selector NAME | --loop] --port 0``.
"""

import signal

import reactor

from . import _serve

SELECTORS = {
    "select": reactor.SelectSelector,
    "poll": reactor.PollSelector,
    "epoll": reactor.EpollSelector,
}


def serve_selector(args):
    selector = SELECTORS[args.selector]()
    unsent = {}  # socket -> bytes the kernel has not taken yet

    def accept(sock, mask):
        conn, address = sock.accept()
        conn.setblocking(False)
        selector.register(conn, reactor.EVENT_READ, read)

    def read(conn, mask):
        try:
            data = conn.recv(_serve.RECV_SIZE)  # ready: this does not wait
        except _serve.PEER_GONE:
            data = b""
        if not data:
            return close(conn)
        left = _serve.send_some(conn, args.reply(data))
        if left is None:
            close(conn)
        elif left:  # the kernel's buffer is full: wait until writable, reading nothing
            unsent[conn] = left
            selector.modify(conn, reactor.EVENT_WRITE, write)

    def write(conn, mask):  # writable again: send the rest of the reply
        left = _serve.send_some(conn, unsent[conn])
        if left is None:
            close(conn)
        elif left:
            unsent[conn] = left
        else:
            del unsent[conn]
            selector.modify(conn, reactor.EVENT_READ, read)

    def close(conn):
        unsent.pop(conn, None)
        selector.unregister(conn)
        conn.close()

    with selector, _serve.listen(args) as listener:
        listener.setblocking(False)
        selector.register(listener, reactor.EVENT_READ, accept)
        try:
            while True:
                for key, mask in selector.select():  # waits for any socket
                    key.data(key.fileobj, mask)
        finally:
            for key in list(selector.get_map().values()):
                if key.fileobj is not listener:
                    key.fileobj.close()


def serve_loop(args):
    caught = []
    with reactor.Reactor() as loop:
        # The Reactor's own signal handling, not _serve's Stop raised by a
        # Python handler: Python runs that handler at the first function
        # call after the wait returns, and when that call is a finalizer (a
        # transport freed as the loop wakes, just after its clients left)
        # the exception is printed and dropped, and the server runs on.
        def stop(signum):
            caught.append(signal.Signals(signum).name)
            loop.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop, signum)
        server = reactor.TCPServer(
            loop,
            args.host,
            args.port,
            backlog=_serve.BACKLOG,
            on_data=lambda connection, data: connection.write(args.reply(data)),
        )
        _serve.announce(server.address)
        try:
            loop.run()
        finally:
            server.close()
            for connection in list(server.connections):
                connection.abort()
            loop.run_once(0)  # connection_lost() runs in an iteration of its own
    raise _serve.Stop(caught[0])


def serve(args):
    (serve_loop if args.loop else serve_selector)(args)


def _arguments(parser):
    parser.add_argument("--selector", choices=SELECTORS, default="epoll")
    parser.add_argument(
        "--loop", action="store_true", help="reactor.Reactor and the chapter's TCPServer instead"
    )


if __name__ == "__main__":
    raise SystemExit(_serve.main(serve, __doc__, _arguments))
