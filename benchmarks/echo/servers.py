"""One echo protocol on every event loop, for the benchmarks' echo driver.

    python -m benchmarks.echo.servers --impl asyncio|asyncio-reactor|uvloop|reactor
        [--buffered | --api streams|sock] [--tls CERT KEY] [--host H] [--port P]

``EchoProtocol`` is ONE ``asyncio.Protocol`` class (``data_received`` writes
the bytes back), run unchanged on ``--impl``: ``asyncio``
(``asyncio.new_event_loop()``, the stdlib's selector), ``asyncio-reactor``
(``reactor.new_event_loop()``: asyncio on reactor's selector), ``uvloop``, or
``reactor`` (``reactor.Reactor()``, whose ``create_server`` returns the
server at once: callbacks, no futures).  ``--buffered`` runs its
``asyncio.BufferedProtocol`` twin instead; ``--api streams`` (a handler on
``reader.read``/``writer.write``/``drain``) and ``--api sock``
(``loop.sock_recv``/``sock_sendall``) are asyncio's other two APIs.
``--tls`` serves the same over TLS.  Logs ``listening on HOST:PORT`` (the
port bound: ``--port 0`` picks one) to stderr; SIGTERM and SIGINT stop it.
"""

import argparse
import asyncio
import signal
import socket
import ssl
import sys

from benchmarks._harness import new_loop


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class BufferedEchoProtocol(asyncio.BufferedProtocol):
    """Reads into one buffer that every connection shares (each read is
    written back before the next one); ``write`` gets a copy (the slice),
    because a transport may keep what the kernel did not take yet."""

    buffer = bytearray(256 * 1024)  # asyncio's own read size

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buffer

    def buffer_updated(self, nbytes):
        self.transport.write(self.buffer[:nbytes])


async def stream_echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:  # reset by the load client's final close
        pass
    finally:
        writer.close()
        try:
            # Retrieves the reset from the connection's closed future too;
            # left there, asyncio logs it ("Future exception was never
            # retrieved") when the future is collected (on uvloop it was).
            await writer.wait_closed()
        except ConnectionError:
            pass


async def sock_echo(loop, conn):
    with conn:
        try:
            while data := await loop.sock_recv(conn, 65536):
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass


async def sock_accept(loop, listener, tasks):
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tasks.add(task := loop.create_task(sock_echo(loop, conn)))
        task.add_done_callback(tasks.discard)


def asyncio_server(args, ctx):
    """(loop, server) on one of asyncio's loops."""
    loop = new_loop(args.impl)
    asyncio.set_event_loop(loop)
    kw = dict(backlog=1024, reuse_address=True, ssl=ctx)
    if args.api == "streams":
        return loop, loop.run_until_complete(
            asyncio.start_server(stream_echo, args.host, args.port, **kw)
        )
    if args.api == "sock":
        listener = socket.create_server((args.host, args.port), backlog=1024)
        listener.setblocking(False)
        loop.create_task(sock_accept(loop, listener, args.tasks))
        return loop, listener
    factory = BufferedEchoProtocol if args.buffered else EchoProtocol
    return loop, loop.run_until_complete(loop.create_server(factory, args.host, args.port, **kw))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--impl", choices=("asyncio", "asyncio-reactor", "uvloop", "reactor"), required=True
    )
    parser.add_argument("--buffered", action="store_true", help="the BufferedProtocol twin")
    parser.add_argument("--api", choices=("protocol", "streams", "sock"), default="protocol")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.api != "protocol" and (args.impl == "reactor" or args.buffered):
        parser.error("--api streams|sock need an asyncio loop and the plain Protocol")
    if args.api == "sock" and args.tls:
        parser.error("--api sock has no TLS")
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*args.tls)
    args.tasks = set()
    if args.impl == "reactor":
        loop = new_loop("reactor")
        factory = BufferedEchoProtocol if args.buffered else EchoProtocol
        server = loop.create_server(factory, args.host, args.port, backlog=1024, ssl=ctx)
        run = loop.run
    else:
        loop, server = asyncio_server(args, ctx)
        run = loop.run_forever
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    sock = server if isinstance(server, socket.socket) else server.sockets[0]
    host, port = sock.getsockname()[:2]
    print(
        f"{args.impl} {args.api}{' buffered' * args.buffered}{' tls' * bool(ctx)} echo: "
        f"listening on {host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        run()
    finally:
        server.close()
        if args.impl != "reactor":  # the sock API's tasks end with the loop
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


if __name__ == "__main__":
    main()
