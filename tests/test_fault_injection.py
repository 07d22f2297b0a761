"""``python -m reactor echo`` under syscall fault injection: the real server
process run by ``strace -f -e inject=...``, driven by plain blocking sockets.

Failures a busy server meets for real, made to happen on purpose:

* EINTR on waits (epoll_wait) and reads (recvfrom), EAGAIN on sends
  (sendto), EMFILE on accept (accept4) must lose no byte and stall no
  client: every byte is echoed exactly once, in order;
* ECONNRESET on a read and EPIPE on a send must close that connection
  only: the other clients go on being served, and so is a new one.

strace injects by not running the syscall at all and returning the error,
so an EMFILE'd accept leaves its connection queued, an EAGAIN'd send sent
nothing, and so on: exactly what the kernel would have done.  Each server
is a command line (SERVERS); asyncio's own loop, serving the same replies,
runs every scenario too, so the reference checks the test itself.
FAULT_STRACE_LOG=path keeps strace's output (each injected call is marked
"(INJECTED)") to see what was hit.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from reactor import uring_available
from test_echo_cli import echo_server

STRACE = shutil.which("strace")


def _strace_works():
    if STRACE is None:
        return "strace is not installed"
    probe = subprocess.run(
        [
            STRACE,
            "-f",
            "-qq",
            "-o",
            os.devnull,
            "--seccomp-bpf",
            "-e",
            "inject=getppid:error=EINTR",
            sys.executable,
            "-c",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.decode(errors='replace').strip()}"
    return None


_REFUSED = _strace_works()
pytestmark = pytest.mark.skipif(_REFUSED is not None, reason=str(_REFUSED))

# The chapter's echo with asyncio's own loop and transports: the reference.
ASYNCIO_ECHO = textwrap.dedent("""\
    import asyncio, signal, sys

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(b"Your msg = " + data + b" ~~~")

    async def main():
        loop = asyncio.get_running_loop()
        port = int(sys.argv[sys.argv.index("--port") + 1])
        server = await loop.create_server(Echo, "127.0.0.1", port)
        host, port = server.sockets[0].getsockname()[:2]
        print(f"asyncio echo listening on {host}:{port}", file=sys.stderr, flush=True)
        stop = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
        await stop
        server.close()

    asyncio.run(main())
    """)

# name -> the server's command line after the interpreter (it takes --port).
SERVERS = {
    "reactor": ("-m", "reactor", "echo"),
    "reactor-asyncio": (
        "-c",
        ASYNCIO_ECHO.replace("asyncio.run(main())", "import reactor; reactor.run(main())"),
    ),
    "asyncio": ("-c", ASYNCIO_ECHO),
}

# strace's `when=FIRST[..LAST][+STEP]` counts each syscall per thread.
LOSSLESS = {
    "EINTR-on-waits": "epoll_wait:error=EINTR:when=2+2",
    "EINTR-on-reads": "recvfrom:error=EINTR:when=1+2",
    "EAGAIN-on-sends": "sendto:error=EAGAIN:when=1+2",
    "EMFILE-on-accepts": "accept4:error=EMFILE:when=2..3",
}
DISRUPTIVE = {
    "ECONNRESET-on-a-read": "recvfrom:error=ECONNRESET:when=7",
    "EPIPE-on-a-send": "sendto:error=EPIPE:when=7",
}

# Refusals asyncio's own loop does not survive (reactor.net._transports [X8],
# reactor.net._streams [ST4]): per server, since the count of earlier calls
# differs.  The second client's registration, and its TCP_NODELAY.
REFUSED_REGISTRATION = {  # the second client's EPOLL_CTL_ADD
    "reactor": "epoll_ctl:error=ENOMEM:when=5",
    "reactor-asyncio": "epoll_ctl:error=ENOMEM:when=4",
}
REFUSED_NODELAY = "setsockopt:error=EINVAL:when=3"  # the second client's TCP_NODELAY

# The io_uring server (--backend uring) reads, sends and accepts through
# the ring: only its enters are syscalls of their own.
URING_TRANSIENT = {
    "EINTR-on-io_uring_enter": "io_uring_enter:error=EINTR:when=3+2",
    "EAGAIN-on-io_uring_enter": "io_uring_enter:error=EAGAIN:when=3+3",
    "EBUSY-on-io_uring_enter": "io_uring_enter:error=EBUSY:when=4+3",
}

CLIENT_TIMEOUT = 5.0  # a stall fails the test (asyncio retries an EMFILE after 1 s)
FRAME = re.compile(rb"Your msg = ([^~]*) ~~~")
PREFIX = b"Your msg = "


@contextlib.contextmanager
def traced_server(tmp_path, command, inject):
    syscall = inject.split(":", 1)[0]
    output = os.environ.get("FAULT_STRACE_LOG", os.devnull)
    prefix = (
        STRACE,
        "-f",
        "-qq",
        "-o",
        output,
        "--seccomp-bpf",
        "-e",
        f"trace={syscall}",
        "-e",
        f"inject={inject}",
    )
    with echo_server(tmp_path, command=command, prefix=prefix) as server:
        try:
            yield server
        finally:
            for pid in _children(server.proc.pid):  # strace killed would leave it running
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _children(pid):
    children = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(child) for child in f.read().split()]
    return children


def stop(server):
    """SIGTERM to the traced server (strace's child); its exit status,
    which strace exits with."""
    for pid in _children(server.proc.pid):
        os.kill(pid, signal.SIGTERM)
    try:
        return server.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit on SIGTERM:\n{server.log().decode()}")


class Client:
    """One connection speaking the chapter's protocol in lockstep: every
    byte sent must come back once, in order, inside ``Your msg = ... ~~~``
    frames (however the server's reads cut the messages)."""

    def __init__(self, server):
        self.sock = socket.create_connection(server.address, timeout=CLIENT_TIMEOUT)
        self.sent = bytearray()
        self.echoed = bytearray()
        self.pending = b""
        self.closed = False

    def exchange(self, message):
        """Send `message` and read until it came back; False once the
        server closed this connection (a stall raises socket.timeout)."""
        assert b"~" not in message
        try:
            self.sock.sendall(message)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        self.sent += message
        while len(self.echoed) < len(self.sent):
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self.pending += chunk
            while (match := FRAME.match(self.pending)) is not None:
                self.echoed += match.group(1)
                self.pending = self.pending[match.end() :]
            head = self.pending[: len(PREFIX)]
            assert PREFIX.startswith(head), f"not a frame: {self.pending[:80]!r}"
        # Each byte at most once and in order: what came back is a prefix.
        assert self.sent.startswith(self.echoed), "bytes echoed out of order or twice"
        return not self.closed

    def close(self):
        self.sock.close()


def message(client_index, round_index):
    """Messages of many sizes, up to a few socket reads' worth."""
    size = 1 + (client_index * 7919 + round_index * 104729) % 20000
    return (b"%d.%d:" % (client_index, round_index) + b"abcdefghij" * (size // 10 + 1))[:size]


def converse(clients, rounds):
    """Round robin over the clients still open; the indexes of those the
    server closed."""
    closed = set()
    for round_index in range(rounds):
        for index, client in enumerate(clients):
            if index not in closed and not client.exchange(message(index, round_index)):
                closed.add(index)
    return closed


@pytest.mark.parametrize("inject", LOSSLESS.values(), ids=LOSSLESS.keys())
@pytest.mark.parametrize("command", SERVERS.values(), ids=SERVERS.keys())
def test_transient_errors_lose_no_byte_and_stall_no_client(tmp_path, command, inject):
    serve_through(tmp_path, command, inject)


@pytest.mark.skipif(not uring_available(), reason=f"{uring_available().reason}")
@pytest.mark.parametrize("inject", URING_TRANSIENT.values(), ids=URING_TRANSIENT.keys())
def test_the_io_uring_server_rides_out_transient_enter_errors(tmp_path, inject):
    """io_uring_enter failing with EINTR (a signal), EAGAIN or EBUSY (the
    kernel short of room) submits nothing: the ring tries again [U5]."""
    serve_through(tmp_path, ("-m", "reactor", "echo", "--backend", "uring"), inject)


def serve_through(tmp_path, command, inject):
    """Four clients and a late one, every byte back once and in order."""
    with traced_server(tmp_path, command, inject) as server:
        clients = [Client(server) for _ in range(4)]
        try:
            assert converse(clients, 12) == set()
            assert all(client.echoed == client.sent for client in clients)
            late = Client(server)
            clients.append(late)
            assert converse([late], 3) == set() and late.echoed == late.sent
        finally:
            for client in clients:
                client.close()
        assert stop(server) == 0, server.log().decode()


@pytest.mark.parametrize("inject", DISRUPTIVE.values(), ids=DISRUPTIVE.keys())
@pytest.mark.parametrize("command", SERVERS.values(), ids=SERVERS.keys())
def test_a_broken_connection_closes_only_itself(tmp_path, command, inject):
    one_connection_breaks(tmp_path, command, inject)


@pytest.mark.parametrize("server", sorted(REFUSED_REGISTRATION))
def test_a_refused_registration_closes_only_its_connection(tmp_path, server):
    # [X8] ENOMEM from epoll_ctl for one accepted connection: that client is
    # closed, not left waiting; the others and a new one are served.
    one_connection_breaks(tmp_path, SERVERS[server], REFUSED_REGISTRATION[server])


def one_connection_breaks(tmp_path, command, inject):
    """Three clients: exactly one is closed, the others get every byte back,
    a late one is served, and nothing is reported as a bug."""
    with traced_server(tmp_path, command, inject) as server:
        clients = [Client(server) for _ in range(3)]
        try:
            closed = converse(clients, 8)
            assert len(closed) == 1, f"closed: {closed}\n{server.log().decode()}"
            for index, client in enumerate(clients):
                if index not in closed:
                    assert client.echoed == client.sent
            late = Client(server)  # the server still serves new clients
            clients.append(late)
            assert converse([late], 3) == set() and late.echoed == late.sent
        finally:
            for client in clients:
                client.close()
        assert stop(server) == 0, server.log().decode()
        assert b"Traceback" not in server.log()  # a peer's reset is no bug to report


@pytest.mark.parametrize("server", ["reactor", "reactor-asyncio"])
def test_a_refused_tcp_nodelay_stalls_no_client(tmp_path, server):
    # [ST4] setsockopt(TCP_NODELAY) failing for one accepted connection: it
    # is served all the same (asyncio's loop never serves it).
    serve_through(tmp_path, SERVERS[server], REFUSED_NODELAY)
