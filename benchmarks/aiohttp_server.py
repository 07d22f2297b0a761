"""aiohttp's hello world on an event loop, for the echo driver's "http" case.

    python -m benchmarks.aiohttp_server --impl asyncio|uvloop|asyncio-reactor [--port P]

One ``aiohttp.web`` application answering ``GET /`` with "Hello, world!"
(keep-alive), run unchanged on ``--impl``: asyncio's loop, uvloop's, or
reactor's asyncio EventLoop (``asyncio-reactor``: ``reactor.new_event_loop()``).
Logs ``listening on HOST:PORT`` to stderr; SIGTERM and SIGINT stop it.  The
load is the echo driver's C client with ``--http``.
"""

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from benchmarks._harness import new_loop


async def hello(request):
    return web.Response(text="Hello, world!")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=("asyncio", "asyncio-reactor", "uvloop"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    loop = new_loop(args.impl)
    asyncio.set_event_loop(loop)
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    loop.run_until_complete(site.start())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    host, port = site._server.sockets[0].getsockname()[:2]
    print(f"{args.impl} aiohttp: listening on {host}:{port}", file=sys.stderr, flush=True)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.close()


if __name__ == "__main__":
    main()
