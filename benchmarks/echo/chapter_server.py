"""The IO-multiplexing chapter's echo server: a bare loop on the stdlib's
``selectors``, the baseline of reactor's layers (the same loop on reactor's
selectors is the IO models' ``python -m reactor.models.multiplexing``).

    python -m benchmarks.echo.chapter_server [--host H] [--port P]

The textbook's shape, kept as it is: a ``DefaultSelector``, a non-blocking
listening socket, callbacks stored as ``key.data``, and ``for key, mask in
sel.select(): key.data(key.fileobj, mask)``.  ``read`` does one
``recv(65536)`` and sends the bytes straight back (raw echo).  The only
additions are no printing per event, a larger listen backlog, a reset
connection treated like a closed one (the load client's final close can
reset connections), and what a partial send needs (100 KiB messages fill
the socket's buffer): the rest is kept, the socket is watched for
EVENT_WRITE instead of EVENT_READ until it is flushed, then reading resumes;
and TCP_NODELAY on each connection, as every other server here sets it
(asyncio by default): without it, the tail of a large echo waits for the
client's delayed ACK, and the benchmark would time Nagle's algorithm.
Logs ``listening on HOST:PORT`` to stderr when ready; SIGTERM and SIGINT
stop it.
"""

import argparse
import selectors
import signal
import socket
import sys

sel = selectors.DefaultSelector()
pending = {}  # conn -> bytes the kernel did not take yet


def accept(sock, mask):
    conn, addr = sock.accept()  # Should be ready
    conn.setblocking(False)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel.register(conn, selectors.EVENT_READ, read)


def close(conn):
    pending.pop(conn, None)
    sel.unregister(conn)
    conn.close()


def send(conn, data):
    try:
        sent = conn.send(data)  # Hope it won't block
    except BlockingIOError:
        sent = 0
    except ConnectionError:
        close(conn)
        return
    if sent < len(data):  # it did: keep the rest, stop reading until it is out
        pending[conn] = data[sent:]
        sel.modify(conn, selectors.EVENT_WRITE, flush)
    elif conn in pending:
        del pending[conn]
        sel.modify(conn, selectors.EVENT_READ, read)


def flush(conn, mask):
    send(conn, pending[conn])


def read(conn, mask):
    try:
        data = conn.recv(65536)  # Should be ready
    except ConnectionError:  # reset by the peer: treat as closed
        data = b""
    if data:
        send(conn, data)
    else:
        close(conn)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sock.setblocking(False)
    sel.register(sock, selectors.EVENT_READ, accept)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(
        f"chapter echo ({type(sel).__module__}.{type(sel).__name__}): "
        f"listening on {args.host}:{sock.getsockname()[1]}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            events = sel.select()
            for key, mask in events:
                callback = key.data
                callback(key.fileobj, mask)
    except KeyboardInterrupt:
        pass
    finally:
        sel.close()
        sock.close()


if __name__ == "__main__":
    main()
