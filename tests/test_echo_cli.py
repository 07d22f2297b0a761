"""``python -m reactor echo`` end to end: a real subprocess, real sockets.

The server logs to stderr, which goes to a file (not a pipe: with many
clients a pipe nobody reads would fill and block the server's logging).
The port is parsed from its "listening on HOST:PORT" line.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from reactor import uring_available

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

    def fds(self):
        return os.listdir(f"/proc/{self.proc.pid}/fd")

    def stop(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit on signal {signum}:\n{self.log().decode()}")


@contextlib.contextmanager
def echo_server(tmp_path, *args, command=("-m", "reactor", "echo"), prefix=()):
    """The echo server `python *command` on a port the system picks
    (`prefix`: a command that runs it, such as strace)."""
    log_path = tmp_path / "echo-stderr.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*prefix, sys.executable, *command, "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            match = LISTENING.search(log_path.read_bytes())
            if match:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "the server did not start (exit status "
                    f"{proc.returncode}):\n{log_path.read_text()}"
                )
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


@pytest.mark.parametrize(
    "backend",
    [
        None,
        "epoll",
        "poll",
        "select",
        pytest.param(
            "uring",
            marks=pytest.mark.skipif(not uring_available(), reason=uring_available().reason),
        ),
    ],
)
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


@pytest.mark.parametrize(
    "backend",
    [
        "epoll",
        pytest.param(
            "uring",
            marks=pytest.mark.skipif(not uring_available(), reason=uring_available().reason),
        ),
    ],
)
def test_max_connections_refuses_the_sixth(tmp_path, backend):
    with echo_server(tmp_path, "--backend", backend, "--max-connections", "5") as server:
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


# --------------------------------------------------------------------------
# Issue 9: one-line errors, escaped logs, a graceful stop, workers, TLS


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["--port", "70000"], 2, "argument --port: '70000': port must be 0-65535"),
        (["--port", "x"], 2, "argument --port: 'x': not a port"),
        (["--max-connections", "-5"], 2, "argument --max-connections: '-5': must be >= 0"),
        (["--idle-timeout", "nan"], 2, "argument --idle-timeout"),
        (["--workers", "0"], 2, "argument --workers: '0': must be >= 1"),
        (["--max-outbound", "1Q"], 2, "argument --max-outbound: '1Q': not a size"),
        (["--backend", "kqueue"], 2, "argument --backend: invalid choice"),
        (["--backend", "uring", "--workers", "2"], 2, "--backend uring does not take --workers"),
        (
            ["--host", "no-such-host.invalid", "--port", "0"],
            1,
            "cannot listen on no-such-host.invalid:0: ",
        ),
        (
            ["--host", "192.0.2.1", "--port", "0"],
            1,
            "cannot listen on 192.0.2.1:0: cannot assign requested address",
        ),
        (
            ["--tls", "/nonexistent.pem", "/nonexistent.key"],
            1,
            "cannot load the TLS certificate '/nonexistent.pem'",
        ),
    ],
)
def test_bad_arguments_and_failures_are_one_line(args, status, message):
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "echo", *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reactor echo: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_line():
    holder = socket.create_server(("127.0.0.1", 0))
    with holder:
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "reactor", "echo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"reactor echo: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )


def test_peer_bytes_cannot_forge_log_lines(tmp_path):
    forged = b"hi\n2026-01-01 00:00:00,000 MainThread 1 FORGED\x1b[2J\xe2\x80\xa8end"
    with echo_server(tmp_path) as server:
        with server.connect() as c:
            expected = b"Your msg = " + forged + b" ~~~"
            c.sendall(forged)
            assert recv_exactly(c, len(expected)) == expected  # the reply is unchanged
        assert server.stop() == 0
        log = server.log()
    lines = [line for line in log.splitlines() if b"Your msg" in line]
    assert len(lines) == 1
    assert re.match(
        CHAPTER_LINE % rb"Your msg = hi\\n2026.* FORGED\\x1b\[2J\\u2028end ~~~", lines[0]
    )
    assert not any(line.endswith(b"FORGED") for line in log.splitlines())


def test_stop_lets_replies_in_flight_go_out(tmp_path):
    big = bytes(range(256)) * 16384  # 4 MiB echoed raw
    with echo_server(tmp_path, "--raw") as server:
        with server.connect() as c:
            c.sendall(b"x")
            assert recv_exactly(c, 1) == b"x"
            c.sendall(big)
            time.sleep(0.3)  # the server has read it and queued the echo
            server.proc.send_signal(signal.SIGTERM)
            got = bytearray()
            while True:
                chunk = c.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            assert got == big
        assert server.proc.wait(IO_TIMEOUT) == 0


def test_workers_share_the_port_and_one_that_dies_is_replaced(tmp_path):
    with echo_server(tmp_path, "--workers", "3", "--raw") as server:
        deadline = time.monotonic() + START_TIMEOUT
        # the supervisor's line and each worker's: "3 workers listening" alone
        # also says "worker", and a worker killed before it listened is
        # replaced without ever writing its line
        while server.log().count(b"listening on") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Not pgrep: under CI's ASan run (LD_PRELOAD) it deadlocks.
        pid = server.proc.pid
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            workers = [int(p) for p in f.read().split()]
        assert len(workers) == 3
        for i in range(20):
            with server.connect() as c:
                c.sendall(b"n%d" % i)
                assert recv_exactly(c, len(b"n%d" % i)) == b"n%d" % i
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT
        while b"starting another" not in server.log() or server.log().count(b"listening on") < 5:
            assert time.monotonic() < deadline, server.log().decode()
            time.sleep(0.05)
        for i in range(20):
            with server.connect() as c:
                c.sendall(b"again")
                assert recv_exactly(c, 5) == b"again"
        assert server.stop() == 0
        log = server.log()
    assert b"Traceback" not in log
    assert log.count(b"stopped: 0 connections refused") == 3
    assert b"supervisor: stopped" in log


def test_tls_echo(tmp_path):
    import ssl
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with echo_server(tmp_path, "--tls", str(cert_path), str(key_path)) as server:
        with server.connect() as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as c:
            ask(c, b"over tls")
            assert c.version().startswith("TLS")
        assert server.stop() == 0
        log = server.log()
    assert b", TLS," in log
    assert b"Your msg = over tls ~~~" in log


@pytest.mark.parametrize("argv", [["--help"], ["echo", "--help"], ["models", "--help"]])
def test_help_is_written_for_users(argv):
    """--help once printed the module's developer notes ("Facts this module
    relies on: [E1] ...") with RST backticks."""
    proc = subprocess.run(
        [sys.executable, "-m", "reactor", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m reactor")
    for developer_text in ("Facts this module", "[E1]", "``"):
        assert developer_text not in proc.stdout, proc.stdout


def test_version_is_the_package_version():
    import reactor

    proc = subprocess.run(
        [sys.executable, "-m", "reactor", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout) == (0, f"reactor {reactor.__version__}\n")
