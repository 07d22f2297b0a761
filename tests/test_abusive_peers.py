"""Slow and abusive peers against ``python -m reactor echo`` (README,
"Reliability"): a real server process, real sockets on loopback.

- a client that never reads: the server stops reading from it once
  --max-outbound bytes are queued, so its memory stays bounded, the others
  are served meanwhile, and every byte is echoed once the client reads;
- a client that connects and sends nothing: closed by --idle-timeout;
- a flood of connections past --max-connections: refused cleanly while
  the admitted ones keep being served;
- RST in the middle of a message: the server drops that connection and
  goes on.
"""

import socket
import struct
import threading
import time

from test_echo_cli import IO_TIMEOUT, ask, closed_by_peer, echo_server, recv_exactly

MiB = 1 << 20


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def reset(sock):
    """Close with an RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_client_that_never_reads_keeps_server_memory_bounded(tmp_path):
    cap = 64 * 1024
    with echo_server(tmp_path, "--raw", "--max-outbound", str(cap)) as server:
        pid = server.proc.pid
        with server.connect() as warm:  # let the server reach its steady size
            warm.sendall(b"x" * MiB)
            recv_exactly(warm, MiB)
        before = rss_kib(pid)
        hog = server.connect()
        other = server.connect()
        try:
            hog.setblocking(False)
            pattern = bytes(range(251)) * 1000  # 251 KB, a prime period
            sent = bytearray()
            stalled_since = None
            while True:
                try:
                    n = hog.send(pattern[len(sent) % len(pattern) :] or pattern)
                    sent += (pattern[len(sent) % len(pattern) :] or pattern)[:n]
                    stalled_since = None
                except BlockingIOError:
                    if stalled_since is None:
                        stalled_since = time.monotonic()
                    elif time.monotonic() - stalled_since > 1.0:
                        break  # the server stopped reading from us
                    # Meanwhile another client is served as usual.
                    ask_raw(other, b"still served")
                    time.sleep(0.01)
                assert len(sent) < 512 * MiB, "the server never stopped reading"
            grown = rss_kib(pid) - before
            # What the hog pushed sits in kernel socket buffers, not in the
            # server: its own queue is capped at `cap`.
            assert grown < 16 * 1024, f"server RSS grew by {grown} KiB for {len(sent)} bytes sent"
            # Nothing lost: reading now gets every byte back, in order.
            hog.setblocking(True)
            hog.settimeout(IO_TIMEOUT)
            assert recv_exactly(hog, len(sent)) == bytes(sent)
        finally:
            hog.close()
            other.close()
        assert server.stop() == 0
        assert b"Traceback" not in server.log()


def ask_raw(sock, msg):
    sock.sendall(msg)
    assert recv_exactly(sock, len(msg)) == msg


def test_silent_client_is_closed_by_idle_timeout_and_talker_is_not(tmp_path):
    with echo_server(tmp_path, "--idle-timeout", "0.3") as server:
        silent = server.connect()
        talker = server.connect()
        try:
            start = time.monotonic()
            deadline = start + 1.2
            while time.monotonic() < deadline:  # the talker speaks every 0.1 s
                ask(talker, b"ping")
                time.sleep(0.1)
            silent.settimeout(IO_TIMEOUT)
            assert closed_by_peer(silent)
            closed_after = time.monotonic() - start
            assert closed_after < 1.2 + IO_TIMEOUT
            ask(talker, b"still open")
        finally:
            silent.close()
            talker.close()
        assert server.stop() == 0


def test_flood_past_max_connections_refused_while_admitted_are_served(tmp_path):
    limit, flood = 20, 300
    with echo_server(tmp_path, "--raw", "--max-connections", str(limit)) as server:
        admitted = [server.connect() for _ in range(limit)]
        for i, s in enumerate(admitted):
            ask_raw(s, b"hello %d" % i)
        errors = []
        stop = threading.Event()

        def keep_talking():
            try:
                i = 0
                while not stop.is_set():
                    for s in admitted:
                        ask_raw(s, b"during the flood %d" % i)
                    i += 1
            except Exception as exc:  # reported below
                errors.append(exc)

        talker = threading.Thread(target=keep_talking)
        talker.start()
        extras = []
        try:
            for _ in range(flood):
                extras.append(server.connect())
            for s in extras:
                assert closed_by_peer(s)
        finally:
            stop.set()
            talker.join(IO_TIMEOUT)
            for s in extras:
                s.close()
        assert not errors, errors
        for i, s in enumerate(admitted):
            ask_raw(s, b"after %d" % i)
            s.close()
        assert server.stop() == 0
        log = server.log()
    assert f"stopped: {flood} connections refused".encode() in log
    assert b"Traceback" not in log


def test_reset_in_the_middle_of_a_message(tmp_path):
    for mode in ([], ["--raw"]):
        with echo_server(tmp_path, *mode) as server:
            with server.connect() as steady:
                for i in range(30):
                    c = server.connect()
                    c.sendall(b"half of a long message " * (1000 + 500 * i))
                    if i % 2:
                        c.recv(10)  # some replies already on their way back
                    reset(c)
                    if mode:
                        ask_raw(steady, b"still here %d" % i)
                    else:
                        ask(steady, b"still here %d" % i)
            assert server.stop() == 0
            log = server.log()
        assert b"Traceback" not in log, log.decode()[-2000:]
