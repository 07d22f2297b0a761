"""asyncio echo servers for benchmarks/echo_bench.py.

    python benchmarks/echo/asyncio_server.py --mode protocol|streams|sock
        --loop stdlib|reactor|uvloop [--host H] [--port P]

``--mode protocol``: an ``asyncio.Protocol`` whose ``data_received`` calls
``transport.write(data)``.

``--mode streams``: ``asyncio.start_server``, one handler per connection
looping on ``await reader.read(65536)`` / ``writer.write(data)`` /
``await writer.drain()``.

``--mode sock``: one task per connection looping on ``await
loop.sock_recv(conn, 65536)`` / ``await loop.sock_sendall(conn, data)``.

``--loop stdlib``: ``asyncio.new_event_loop()`` (a ``SelectorEventLoop`` on
``selectors.DefaultSelector``); ``reactor``:
``asyncio.SelectorEventLoop(reactor.DefaultSelector())``; ``uvloop``:
``uvloop.new_event_loop()``.

Logs ``listening on HOST:PORT`` to stderr when ready; SIGTERM and SIGINT stop
it.
"""

import argparse
import asyncio
import signal
import socket
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def handle(loop, conn):
    with conn:
        while True:
            data = await loop.sock_recv(conn, 65536)
            if not data:
                break
            await loop.sock_sendall(conn, data)


async def stream_handler(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:  # reset by the load client's final close
        pass
    finally:
        writer.close()


async def sock_server(loop, lsock, tasks):
    while True:
        conn, _addr = await loop.sock_accept(lsock)
        conn.setblocking(False)
        task = loop.create_task(handle(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def make_loop(kind):
    if kind == "reactor":
        import reactor
        return asyncio.SelectorEventLoop(reactor.DefaultSelector())
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--mode", choices=("protocol", "streams", "sock"), default="protocol")
    parser.add_argument("--loop", choices=("stdlib", "reactor", "uvloop"), default="stdlib")
    args = parser.parse_args(argv)

    loop = make_loop(args.loop)
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    tasks = set()
    if args.mode == "protocol":
        server = loop.run_until_complete(
            loop.create_server(EchoProtocol, args.host, args.port,
                               backlog=1024, reuse_address=True))
    elif args.mode == "streams":
        server = loop.run_until_complete(
            asyncio.start_server(stream_handler, args.host, args.port,
                                 backlog=1024, reuse_address=True))
    else:
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((args.host, args.port))
        lsock.listen(1024)
        lsock.setblocking(False)
        server = loop.create_task(sock_server(loop, lsock, tasks))
    selector = getattr(loop, "_selector", None)
    what = type(selector).__module__ + "." + type(selector).__name__ if selector else type(loop).__module__
    print(f"asyncio {args.mode} echo ({what}): listening on {args.host}:{args.port}",
          file=sys.stderr, flush=True)
    try:
        loop.run_forever()
    finally:
        if args.mode in ("protocol", "streams"):
            server.close()
        else:
            server.cancel()
            lsock.close()
        for task in list(tasks):
            task.cancel()
        loop.close()


if __name__ == "__main__":
    main()
