"""``python -m reactor echo`` end to end: a real subprocess, real sockets.

The server logs to stderr, which goes to a file (not a pipe: with many
clients a pipe nobody reads would fill and block the server's logging).
The port is parsed from its "listening on HOST:PORT" line.
"""

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

START_TIMEOUT = 15.0
IO_TIMEOUT = 10.0

LISTENING = re.compile(rb"listening on ([0-9.]+):(\d+)")
# The chapter's format: "%(asctime)s %(threadName)s %(thread)d %(message)s"
CHAPTER_LINE = rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} MainThread \d+ %s$"


class EchoServer:
    def __init__(self, proc, log_path, address):
        self.proc = proc
        self.log_path = log_path
        self.address = address

    def log(self):
        return self.log_path.read_bytes()

    def connect(self):
        return socket.create_connection(self.address, timeout=IO_TIMEOUT)

    def stop(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit on signal {signum}:\n{self.log().decode()}")


@contextlib.contextmanager
def echo_server(tmp_path, *args):
    log_path = tmp_path / "echo-stderr.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "echo", "--port", "0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            match = LISTENING.search(log_path.read_bytes())
            if match:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the server did not start (exit status "
                            f"{proc.returncode}):\n{log_path.read_text()}")
            time.sleep(0.01)
        address = (match.group(1).decode(), int(match.group(2)))
        assert address[1] > 0
        yield EchoServer(proc, log_path, address)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, f"EOF after {len(buf)} of {n} bytes"
        buf += chunk
    return bytes(buf)


def ask(sock, msg):
    """Send one message, return the chapter reply."""
    sock.sendall(msg)
    expected = b"Your msg = " + msg + b" ~~~"
    reply = recv_exactly(sock, len(expected))
    assert reply == expected
    return reply


def closed_by_peer(sock):
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [None, "epoll", "poll", "select"])
def test_chapter_replies_and_log_format(tmp_path, backend):
    args = [] if backend is None else ["--backend", backend]
    with echo_server(tmp_path, *args) as server:
        with server.connect() as c:
            ask(c, b"hi")
            ask(c, b"second message")
            ask(c, b"\xff\xfe")  # not UTF-8: the reply keeps the bytes
        assert server.stop() == 0
        log = server.log()
    assert f"(backend {backend or 'epoll'},".encode() in log
    for msg in (b"hi", b"second message"):
        pattern = CHAPTER_LINE % re.escape(b"Your msg = " + msg + b" ~~~")
        assert re.search(pattern, log, re.MULTILINE), log.decode()
    assert re.search(CHAPTER_LINE % rb"new client \('127\.0\.0\.1', \d+\)", log, re.MULTILINE)
    assert re.search(CHAPTER_LINE % rb"client \('127\.0\.0\.1', \d+\) closed", log, re.MULTILINE)


def test_raw_echoes_bytes_unchanged(tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    with echo_server(tmp_path, "--raw") as server:
        with server.connect() as c:
            c.sendall(b"hi")
            assert recv_exactly(c, 2) == b"hi"
            c.sendall(data)
            assert recv_exactly(c, len(data)) == data
            c.shutdown(socket.SHUT_WR)
            assert c.recv(10) == b""  # closed after the half-close
        assert server.stop() == 0
        assert b"Your msg" not in server.log()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(tmp_path, signum):
    with echo_server(tmp_path) as server:
        with server.connect() as c:
            ask(c, b"before")
            assert server.stop(signum) == 0
            assert closed_by_peer(c)
        log = server.log()
    assert b"Traceback" not in log
    # The server closed its connections itself on the way out (on_close logs).
    assert re.search(CHAPTER_LINE % rb"client \('127\.0\.0\.1', \d+\) closed", log, re.MULTILINE)
    assert b"stopped: 0 connections refused" in log


def test_many_concurrent_clients(tmp_path):
    n = 200
    with echo_server(tmp_path) as server:
        socks = []
        try:
            for i in range(n):
                socks.append(server.connect())
            for i, s in enumerate(socks):
                s.sendall(b"client-%03d" % i)
            for i, s in enumerate(socks):
                expected = b"Your msg = client-%03d ~~~" % i
                assert recv_exactly(s, len(expected)) == expected
            for i, s in enumerate(socks):  # and a second round, out of order
                j = n - 1 - i
                ask(socks[j], b"again-%03d" % j)
        finally:
            for s in socks:
                s.close()
        assert server.stop() == 0


def test_max_connections_refuses_the_sixth(tmp_path):
    with echo_server(tmp_path, "--max-connections", "5") as server:
        five = [server.connect() for _ in range(5)]
        try:
            for i, s in enumerate(five):
                ask(s, b"hello %d" % i)
            with server.connect() as sixth:
                assert closed_by_peer(sixth)
            for i, s in enumerate(five):
                ask(s, b"still here %d" % i)
        finally:
            for s in five:
                s.close()
        assert server.stop() == 0
        log = server.log()
    assert b"at most 5 connections" in log
    assert b"stopped: 1 connections refused" in log
