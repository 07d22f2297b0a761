"""Model 1, blocking IO (the chapter's 阻塞 IO).

The process asks for data and waits: ``recv()`` sleeps in the kernel until
a segment has come *and* been copied into our buffer (both stages of the
chapter's diagram, on x86-64 the ``recvfrom`` syscall itself: glibc's recv()
is recvfrom(fd, buf, len, flags, NULL, NULL)).  While one call waits, this
thread can do nothing else.

- ``serve_one_at_a_time``: the chapter's plain loop.  While it waits in
  recv() for one client, every other client waits too: their connections
  sit complete in the kernel's listen queue, their messages unread.
- ``serve_threads`` (the default): so each client gets a thread of its own
  to wait in.  Waiting threads cost no CPU, but each is a kernel task with a
  stack, and Python runs one thread at a time (the GIL).

Run: ``python -m reactor.models.blocking [--one-at-a-time] --port 0``.
"""

import socket
import threading

from . import _serve

# A thread's stack: 256 KiB is plenty for recv()/sendall(); the default
# (8 MiB of address space each) would reserve 80 GiB for 10,000 clients.
THREAD_STACK = 256 * 1024


def echo_until_eof(conn, reply):
    """Serve one client until it leaves: wait for data, send the reply."""
    try:
        while data := conn.recv(_serve.RECV_SIZE):  # waits for a message
            conn.sendall(reply(data))  # waits until all is sent
    except _serve.PEER_GONE:
        pass


def serve_one_at_a_time(args):
    with _serve.listen(args) as listener:
        while True:
            conn, address = listener.accept()  # waits for a client
            with conn:
                echo_until_eof(conn, args.reply)  # ... and the others wait


def serve_threads(args):
    threading.stack_size(THREAD_STACK)
    clients = set()
    lock = threading.Lock()

    def client_thread(conn):
        with conn:
            echo_until_eof(conn, args.reply)
            with lock:
                clients.discard(conn)

    with _serve.listen(args) as listener:
        try:
            while True:
                conn, address = listener.accept()  # waits for a client
                with lock:
                    clients.add(conn)
                threading.Thread(target=client_thread, args=(conn,), daemon=True).start()
        finally:  # Stop: wake every waiting thread (its recv() returns b""), wait for them
            with lock:
                for conn in clients:
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:  # ENOTCONN: its peer is gone, its thread ending
                        pass
            for thread in threading.enumerate():
                if thread is not threading.main_thread():
                    thread.join()


def serve(args):
    (serve_one_at_a_time if args.one_at_a_time else serve_threads)(args)


def _arguments(parser):
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="the chapter's loop: serve one client until it leaves",
    )


if __name__ == "__main__":
    raise SystemExit(_serve.main(serve, __doc__, _arguments))
