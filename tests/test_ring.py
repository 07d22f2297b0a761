"""reactor.Ring: io_uring operations as callbacks on a loop (reactor/uring/).

Every test runs on the Reactor, on asyncio's default loop and on uvloop.
File operations are checked against the same done with the os module;
nothing may be lost, duplicated, leaked, or left for the kernel to write
into after it was freed.
"""

import errno
import gc
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import warnings
import weakref

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reactor
from reactor.uring import _bufring, _probe, _ring
from reactor._native import ffi, lib
from _ringloops import HARNESSES

pytestmark = pytest.mark.skipif(
    not reactor.uring_available(), reason=f"{reactor.uring_available().reason}"
)


@pytest.fixture(params=list(HARNESSES))
def harness(request):
    h = HARNESSES[request.param]()
    yield h
    h.close()


@pytest.fixture
def ring(harness):
    r = reactor.Ring(harness.loop, 8)
    yield r
    r.close()


class Results:
    """A callback recording what each operation gave: value or OSError."""

    def __init__(self):
        self.ops = []

    def __call__(self, op):
        try:
            value = op.result()
        except OSError as exc:
            value = exc
        self.ops.append((op, value))

    def values(self):
        return [value for _op, value in self.ops]

    def __len__(self):
        return len(self.ops)


def run(harness, ring, start, count=1):
    """Start operations with start(callback); run until `count` completed;
    their values in completion order."""
    results = Results()
    start(results)
    harness.run_until(lambda: len(results) >= count)
    return results.values()


def one(harness, ring, start):
    [value] = run(harness, ring, start)
    return value


@pytest.fixture
def datafile(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 64)  # 16 KiB, every byte value
    return path


# -- file operations against os ----------------------------------------------------


def test_read_matches_os_pread(harness, ring, datafile):
    fd = os.open(datafile, os.O_RDONLY)
    try:
        for size, offset in [
            (100, 0),
            (4096, 1000),
            (1, 16383),
            (100, 16380),
            (10, 16384),
            (0, 0),
            (20000, 0),
        ]:
            got = one(harness, ring, lambda cb: ring.read(fd, size, offset, cb))
            assert got == os.pread(fd, size, offset)
    finally:
        os.close(fd)


def test_read_at_the_file_position_moves_it_as_os_read(harness, ring, datafile):
    fd = os.open(datafile, os.O_RDONLY)
    fd2 = os.open(datafile, os.O_RDONLY)
    try:
        for size in (10, 300, 5000):
            got = one(harness, ring, lambda cb: ring.read(fd, size, -1, cb))
            assert got == os.read(fd2, size)
            assert os.lseek(fd, 0, os.SEEK_CUR) == os.lseek(fd2, 0, os.SEEK_CUR)
    finally:
        os.close(fd)
        os.close(fd2)


def test_readinto_and_readv_match_os(harness, ring, datafile):
    fd = os.open(datafile, os.O_RDONLY)
    try:
        buf = bytearray(700)
        n = one(harness, ring, lambda cb: ring.readinto(fd, buf, 123, cb))
        assert n == 700 and bytes(buf) == os.pread(fd, 700, 123)
        a, b, c = bytearray(10), bytearray(0), memoryview(bytearray(5000))
        n = one(harness, ring, lambda cb: ring.readv(fd, [a, b, c], 16000, cb))
        expected = os.pread(fd, 5010, 16000)
        assert n == len(expected) == 384
        assert bytes(a) + bytes(c[: n - 10]) == expected
        reference = [bytearray(10), bytearray(0), bytearray(5000)]
        assert os.preadv(fd, reference, 16000) == n
    finally:
        os.close(fd)


def test_write_and_writev_match_os(harness, ring, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    fd = os.open(ours, os.O_RDWR | os.O_CREAT)
    ref = os.open(theirs, os.O_RDWR | os.O_CREAT)
    try:
        steps = [
            ("write", b"hello", 0),
            ("write", bytearray(b"world"), 100),
            ("writev", [b"ab", memoryview(b"cdef"), b""], 3),
            ("write", b"", 7),
            ("write", b"tail", -1),
        ]
        for kind, data, offset in steps:
            if kind == "write":
                n = one(harness, ring, lambda cb: ring.write(fd, data, offset, cb))
                expected = os.write(ref, data) if offset == -1 else os.pwrite(ref, data, offset)
            else:
                n = one(harness, ring, lambda cb: ring.writev(fd, data, offset, cb))
                expected = os.pwritev(ref, data, offset)
            assert n == expected
        assert ours.read_bytes() == theirs.read_bytes()
    finally:
        os.close(fd)
        os.close(ref)


def test_openat_and_close_fd_match_os(harness, ring, datafile, tmp_path):
    fd = one(harness, ring, lambda cb: ring.openat(datafile, os.O_RDONLY, 0, cb))
    try:
        assert os.read(fd, 5) == datafile.read_bytes()[:5]
        assert os.get_inheritable(fd) is False  # O_CLOEXEC, as os.open
    finally:
        assert one(harness, ring, lambda cb: ring.close_fd(fd, cb)) is None
    with pytest.raises(OSError):
        os.fstat(fd)
    created = tmp_path / "new"
    fd = one(
        harness,
        ring,
        lambda cb: ring.openat(
            str(created).encode(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, cb
        ),
    )
    os.close(fd)
    assert stat.S_IMODE(created.stat().st_mode) == 0o640 & ~_umask()
    missing = one(harness, ring, lambda cb: ring.openat(tmp_path / "missing", os.O_RDONLY, 0, cb))
    assert isinstance(missing, FileNotFoundError) and missing.errno == errno.ENOENT
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = one(harness, ring, lambda cb: ring.openat("data", os.O_RDONLY, 0, cb, dir_fd=dir_fd))
        os.close(fd)
    finally:
        os.close(dir_fd)
    closed = one(harness, ring, lambda cb: ring.close_fd(fd, cb))
    assert isinstance(closed, OSError) and closed.errno == errno.EBADF


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_statx_matches_os_stat(harness, ring, datafile, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(datafile)
    fd = os.open(datafile, os.O_RDONLY)
    try:
        # (Following a symlink touches its atime: each reference is taken
        # right after the statx it is compared with.)
        for target, follow, stat_it in [
            (datafile, True, os.stat),
            (link, False, os.lstat),
            (link, True, os.stat),
            (fd, True, os.fstat),
        ]:
            st = one(harness, ring, lambda cb: ring.statx(target, cb, follow_symlinks=follow))
            reference = stat_it(target)
            for name in (
                "st_mode",
                "st_ino",
                "st_dev",
                "st_nlink",
                "st_uid",
                "st_gid",
                "st_size",
                "st_blksize",
                "st_blocks",
                "st_rdev",
                "st_atime_ns",
                "st_mtime_ns",
                "st_ctime_ns",
            ):
                assert getattr(st, name) == getattr(reference, name), name
            for name in ("st_atime", "st_mtime", "st_ctime"):
                assert getattr(st, name) == getattr(reference, name), name
    finally:
        os.close(fd)
    missing = one(harness, ring, lambda cb: ring.statx(tmp_path / "nope", cb))
    assert isinstance(missing, FileNotFoundError)


def test_fsync_and_ftruncate(harness, ring, datafile):
    fd = os.open(datafile, os.O_RDWR)
    try:
        assert one(harness, ring, lambda cb: ring.fsync(fd, cb)) is None
        assert one(harness, ring, lambda cb: ring.fsync(fd, cb, datasync=True)) is None
        if "FTRUNCATE" not in ring.supported_ops:
            pytest.skip("IORING_OP_FTRUNCATE needs Linux 6.9")
        assert one(harness, ring, lambda cb: ring.ftruncate(fd, 1000, cb)) is None
        assert os.fstat(fd).st_size == 1000
    finally:
        os.close(fd)


def test_errors_are_the_kernels_as_oserror(harness, ring, tmp_path):
    r, w = os.pipe()
    try:
        got = one(harness, ring, lambda cb: ring.read(w, 10, -1, cb))  # the write end
        assert isinstance(got, OSError) and got.errno == errno.EBADF
        os.close(w)
        assert one(harness, ring, lambda cb: ring.read(r, 10, -1, cb)) == b""  # EOF
        # Unlike pread(2) (ESPIPE), io_uring reads a stream at an offset: [U14].
        assert one(harness, ring, lambda cb: ring.read(r, 10, 5, cb)) == b""
    finally:
        os.close(r)
    read_only = os.open(os.devnull, os.O_RDONLY)
    try:
        got = one(harness, ring, lambda cb: ring.write(read_only, b"x", 0, cb))
        assert isinstance(got, OSError) and got.errno == errno.EBADF
    finally:
        os.close(read_only)


# -- sockets ----------------------------------------------------------------------


def test_send_recv_and_recv_into_on_a_socketpair(harness, ring):
    a, b = socket.socketpair()
    with a, b:
        assert one(harness, ring, lambda cb: ring.send(a, b"ping", cb)) == 4
        assert one(harness, ring, lambda cb: ring.recv(b, 100, cb)) == b"ping"
        buf = bytearray(3)
        a.sendall(b"abcdef")
        assert one(harness, ring, lambda cb: ring.recv_into(b.fileno(), buf, cb)) == 3
        assert buf == b"abc"
        assert b.recv(10) == b"def"
        a.close()
        assert one(harness, ring, lambda cb: ring.recv(b, 100, cb)) == b""


def test_send_to_a_closed_peer_is_epipe_without_sigpipe(harness, ring):
    a, b = socket.socketpair()
    with a:
        b.close()
        got = one(harness, ring, lambda cb: ring.send(a, b"x" * 10, cb))
    assert isinstance(got, BrokenPipeError)


@pytest.mark.parametrize("family", ["inet", "inet6", "unix"])
def test_accept_and_connect(harness, ring, family, tmp_path):
    if family == "inet6" and not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    if family == "unix":
        listener = socket.socket(socket.AF_UNIX)
        address = str(tmp_path / "sock")
    else:
        fam = socket.AF_INET if family == "inet" else socket.AF_INET6
        listener = socket.socket(fam)
        address = ("127.0.0.1" if family == "inet" else "::1", 0)
    with listener:
        try:
            listener.bind(address)
        except OSError as exc:  # pragma: no cover - no ::1 configured
            pytest.skip(f"cannot bind {address}: {exc}")
        listener.listen(8)
        address = listener.getsockname()
        client = socket.socket(listener.family)
        with client:
            accepted = Results()
            ring.accept(listener, accepted)
            assert one(harness, ring, lambda cb: ring.connect(client, address, cb)) is None
            harness.run_until(lambda: len(accepted) == 1)
            fd = accepted.values()[0]
            with socket.socket(fileno=fd) as server_side:
                assert server_side.get_inheritable() is False
                client.sendall(b"over io_uring")
                assert server_side.recv(100) == b"over io_uring"


def test_connect_refused_is_connectionrefusederror(harness, ring):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket() as client:
        got = one(harness, ring, lambda cb: ring.connect(client.fileno(), ("127.0.0.1", port), cb))
    assert isinstance(got, ConnectionRefusedError)


def test_multishot_accept_takes_every_connection_once(harness, ring):
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        accepted = Results()
        op = ring.accept(listener, accepted, multishot=True)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(20)]
        try:
            harness.run_until(lambda: len(accepted) == 20)
            fds = accepted.values()
            assert len(set(fds)) == 20 and all(isinstance(fd, int) for fd in fds)
            assert all(o.more for o, _ in accepted.ops)
            assert not op.done()
            op.cancel()
            harness.run_until(op.done)
            assert isinstance(accepted.values()[-1], OSError)
            assert accepted.values()[-1].errno == errno.ECANCELED
            for fd in fds:
                os.close(fd)
        finally:
            for c in clients:
                c.close()


def test_multishot_accept_survives_cq_overflow(harness):
    """A burst of connections overflows a 2-entry CQ: the kernel ends the
    multishot accept [U13]; it is re-armed, and every connection is
    accepted exactly once."""
    ring = reactor.Ring(harness.loop, 1, cq_entries=2)
    with ring, socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        accepted = Results()
        op = ring.accept(listener, accepted, multishot=True)
        ring.submit()
        clients = [socket.create_connection(listener.getsockname()) for _ in range(60)]
        try:
            harness.run_until(lambda: len(accepted) == 60)
            assert len(set(accepted.values())) == 60
            assert not op.done()
        finally:
            for c in clients:
                c.close()
            for value in accepted.values():
                if isinstance(value, int):
                    os.close(value)


# -- timeouts, cancelling --------------------------------------------------------------


def test_timeout_completes_after_its_time(harness, ring):
    start = time.monotonic()
    assert one(harness, ring, lambda cb: ring.timeout(0.05, cb)) is None
    assert time.monotonic() - start >= 0.05


def test_cancel_a_pending_recv(harness, ring):
    a, b = socket.socketpair()
    with a, b:
        results = Results()
        op = ring.recv(b, 100, results)
        harness.run_once()
        assert not op.done()
        with pytest.raises(RuntimeError):
            op.result()
        assert op.cancel() is True
        harness.run_until(op.done)
        [value] = results.values()
        assert isinstance(value, OSError) and value.errno == errno.ECANCELED
        assert op.cancel() is False
        a.sendall(b"still there")  # a cancelled recv took nothing
        assert b.recv(100) == b"still there"


def test_cancel_a_timeout_and_an_operation_not_yet_submitted(harness, ring):
    results = Results()
    timer = ring.timeout(100, results)
    nop = ring.nop(results)
    assert timer.cancel() and nop.cancel()  # the nop may win: both end
    harness.run_until(lambda: len(results) == 2)
    assert timer.done() and nop.done()
    assert isinstance(timer.exception(), OSError)
    assert timer.exception().errno == errno.ECANCELED


def test_cancelling_an_operation_running_in_an_io_wq_worker(harness, ring, tmp_path, monkeypatch):
    """The -EALREADY path [U7]: an open of a FIFO for writing with O_CREAT
    skips the non-blocking try and waits for a reader in an io-wq worker;
    the cancel cannot take it back, interrupts the worker, and the target
    ends with the kernel's -ERESTARTSYS, reported as ECANCELED.  Its path
    buffer is kept until that last CQE [U6]."""
    cancels = []
    monkeypatch.setattr(_ring, "_cancel_done", lambda res, flags: cancels.append(res))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    results = Results()
    op = ring.openat(fifo, os.O_WRONLY | os.O_CREAT, 0o600, results)
    harness.run_for(0.05)
    assert not op.done()  # blocked in the worker, waiting for a reader
    path_buffer = ring._ops[op._user_data][1]
    assert ffi.string(path_buffer) == os.fsencode(fifo)
    assert op.cancel()
    harness.run_until(op.done)
    assert cancels == [-errno.EALREADY]
    [value] = results.values()
    assert isinstance(value, OSError) and value.errno == errno.ECANCELED, value
    assert ring.in_flight() == 0


def test_a_cancelled_read_keeps_its_buffer_until_the_kernel_lets_go(harness, ring):
    """[U6] the record, and the buffer in it, outlive the cancel request
    until the target's own CQE."""
    r, w = os.pipe()
    try:
        results = Results()
        op = ring.read(r, 4096, -1, results)
        harness.run_once()
        entry = ring._ops[op._user_data]
        buffer = entry[1]
        assert ffi.typeof(buffer) is ffi.typeof("char[]")
        op.cancel()
        assert op._user_data in ring._ops  # cancel requested; the kernel still has it
        harness.run_until(op.done)
        assert op._user_data not in ring._ops
        assert results.values()[0].errno == errno.ECANCELED
    finally:
        os.close(r)
        os.close(w)


def test_an_error_result_keeps_no_frames_or_buffers_alive(harness, ring):
    """Regression: Operation kept its OSError, and raising it from result()
    gave it a traceback holding the callback's frames (and, through them,
    the buffers of the operation): a cycle.  A memoryview exported to the
    kernel in such a cycle crashed the echo server at exit (CPython cannot
    clear a memoryview with exports).  Now each result() raises a new
    exception and an operation is freed by reference counting alone."""
    a, b = socket.socketpair()
    b.close()
    done = []

    def callback(op):
        try:
            op.result()
        except BrokenPipeError as exc:
            done.append(exc.errno)

    gc.collect()
    gc.disable()
    try:
        with a:
            op = ring.send(a, memoryview(bytearray(b"x" * 100)), callback)
            harness.run_until(lambda: done)
            assert isinstance(op.exception(), BrokenPipeError)
            assert op.exception() is not op.exception()  # a new one each time
            ref = weakref.ref(op)
            del op
            assert ref() is None  # no cycle kept it
    finally:
        gc.enable()


# -- many operations, small rings ------------------------------------------------------


def test_thousands_in_flight_on_a_tiny_ring_lose_nothing(harness, datafile):
    """A 2-entry SQ and a 2-entry CQ: the SQ fills every other operation
    [U5] and the CQ overflows at once [U4]; every operation completes
    exactly once, with its own result."""
    ring = reactor.Ring(harness.loop, 2, cq_entries=2)
    fd = os.open(datafile, os.O_RDONLY)
    expected = datafile.read_bytes()
    try:
        with ring:
            assert ring.sq_entries == 2 and ring.cq_entries == 2
            results = Results()
            ops = {}
            for i in range(3000):
                offset = (i * 37) % 16000
                ops[ring.read(fd, 5, offset, results)] = expected[offset : offset + 5]
            for _ in range(2000):
                ring.nop(results)
            assert lib.reactor_ring_sq_flags(ring._cring) & lib.IORING_SQ_CQ_OVERFLOW
            harness.run_until(lambda: len(results) == 5000)
            assert len({id(op) for op, _ in results.ops}) == 5000
            for op, value in results.ops:
                if op in ops:
                    assert value == ops[op]
                else:
                    assert value is None
            assert ring.in_flight() == 0
            harness.run_for(0.05)
            assert len(results) == 5000  # and nothing twice
            assert not harness.errors  # no completion for an unknown operation
    finally:
        os.close(fd)


def test_the_backlog_keeps_order_and_drains(harness, datafile):
    """With the kernel refusing more (EBUSY, simulated by a full SQ that
    enter cannot drain), operations wait in the backlog in order [U5]."""
    ring = reactor.Ring(harness.loop, 1, cq_entries=2)
    with ring:
        results = Results()
        real_enter = ring._enter_now
        ring._enter_now = lambda: False  # the kernel takes nothing
        ops = [ring.nop(results) for _ in range(50)]
        assert len(ring._backlog) == 49
        ring._enter_now = real_enter
        harness.run_until(lambda: len(results) == 50)
        assert [op for op, _ in results.ops] == ops
        assert ring.in_flight() == 0


# -- callbacks and errors ----------------------------------------------------------------


def test_a_callback_that_raises_goes_to_the_loops_handler(harness, ring):
    results = Results()

    def bad(op):
        raise ValueError("callback bug")

    ring.nop(bad)
    ring.nop(results)
    harness.run_until(lambda: len(results) == 1)
    assert [type(e) for e in harness.errors] == [ValueError]


def test_a_keyboardinterrupt_from_a_callback_loses_no_other_completion(harness, ring):
    """Regression: the CQ head moves before the callbacks run [U17]; a
    BaseException leaving one of them dropped the rest of the batch, whose
    awaiters then waited forever (and close() waited CLOSE_TIMEOUT)."""
    results = Results()
    interrupted = []

    def interrupt(op):
        interrupted.append(op)
        raise KeyboardInterrupt

    ring.nop(results)
    ring.nop(interrupt)
    ops = [ring.nop(results) for _ in range(4)]
    with pytest.raises(KeyboardInterrupt):
        harness.run_until(lambda: len(results) == 5)
    assert len(interrupted) == 1
    harness.run_until(lambda: len(results) == 5, timeout=2)
    assert all(op.done() for op in ops) and ring.in_flight() == 0
    assert len(interrupted) == 1 and not harness.errors


def test_an_unknown_user_data_on_a_more_completion_loses_nothing(harness, ring):
    """Regression: a CQE with IORING_CQE_F_MORE for a user_data with no
    record raised KeyError out of the dispatch, dropping the rest of the
    batch; now it is reported as a RuntimeError after the batch [U17]."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        accept = ring.accept(listener, Results(), multishot=True)
        harness.run_once()
        del ring._ops[accept._user_data]  # what a bookkeeping bug would do
        before = set(os.listdir("/proc/self/fd"))
        client = socket.create_connection(listener.getsockname())
        results = Results()
        for _ in range(3):
            ring.nop(results)
        harness.run_until(lambda: len(results) == 3 and harness.errors, timeout=2)
        assert [type(e) for e in harness.errors] == [RuntimeError]
        assert "unknown" in str(harness.errors[0])
        client.close()
        for fd in set(os.listdir("/proc/self/fd")) - before:  # the accepted one
            os.close(int(fd))


def test_operation_arguments_are_checked_before_the_kernel(ring):
    with pytest.raises(TypeError):
        ring.nop("not callable")
    with pytest.raises(ValueError):
        ring.read(-1, 10, 0, print)
    with pytest.raises(ValueError):
        ring.read(0, -1, 0, print)
    with pytest.raises(ValueError):
        ring.read(0, 10, -2, print)
    with pytest.raises(TypeError):
        ring.write(0, "text", 0, print)
    with pytest.raises(TypeError):
        ring.readinto(0, b"read-only", 0, print)
    with pytest.raises(ValueError):
        ring.openat("a\0b", 0, 0, print)
    with pytest.raises(ValueError):
        ring.timeout(float("nan"), print)
    with socket.socket() as sock, pytest.raises(ValueError):
        ring.connect(sock, ("localhost", 80), print)  # no name lookups
    assert ring.in_flight() == 0


# -- hostile input -------------------------------------------------------------------


# (No booleans: True and False are the ints 1 and 0, as for os.close(), and
# close_fd(True) would close pytest's stdout.)
WRONG = st.one_of(
    st.none(),
    st.integers(-(2**70), -1),
    st.integers(2**31, 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.sampled_from([[], {}, (), object(), print, bytearray(3), memoryview(b"mv")]),
)
METHODS = {  # name: how many positional arguments before the callback
    "nop": 0,
    "read": 3,
    "readinto": 3,
    "readv": 3,
    "write": 3,
    "writev": 3,
    "openat": 3,
    "close_fd": 1,
    "statx": 1,
    "fsync": 1,
    "ftruncate": 2,
    "recv": 2,
    "recv_into": 2,
    "send": 2,
    "accept": 1,
    "connect": 2,
    "timeout": 1,
}


def test_hostile_arguments_raise_only_documented_errors(harness, tmp_path):
    """Fuzzing: every operation with wrong types and values (and some right
    ones) raises TypeError, ValueError or OverflowError before anything
    reaches the kernel (OSError too: connect() asks an int fd for its
    family), or completes with an OSError; nothing crashes, leaks or
    reaches the loop's exception handler.  Fds are only this test's own:
    a random fd number could be one pytest writes to."""

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        calls=st.lists(
            st.tuples(
                st.sampled_from(sorted(METHODS)),
                st.lists(st.integers(0, 11), min_size=3, max_size=3),
                st.lists(WRONG, min_size=3, max_size=3),
                st.lists(st.booleans(), min_size=3, max_size=3),
                st.booleans(),
            ),
            max_size=12,
        )
    )
    def check(calls):
        ring = reactor.Ring(harness.loop, 4)
        r, w = os.pipe()
        a, b = (s.detach() for s in socket.socketpair())  # close_fd() may close them
        path = tmp_path / "f"
        path.write_bytes(b"0123456789")
        fd = os.open(path, os.O_RDWR)
        # Every int here may be used as an fd: ours, or 10**7, past fs.nr_open.
        real = [
            r,
            w,
            a,
            b,
            fd,
            10**7,
            [bytearray(4), b"xy"],
            bytearray(8),
            b"data",
            str(path),
            ("127.0.0.1", 1),
            0.001,
        ]
        made = Results()
        makes_fds = set()  # the operations whose ints are fds: openat, accept
        try:
            for name, picks, wrongs, use_real, keyword in calls:
                args = [
                    real[p] if use else wrong for p, wrong, use in zip(picks, wrongs, use_real)
                ][: METHODS[name]]
                while len(args) < METHODS[name]:
                    args.append(real[0])
                kwargs = {}
                if keyword and name in ("accept", "statx", "fsync"):
                    kwargs = {
                        "accept": {"multishot": wrongs[0]},
                        "statx": {"follow_symlinks": wrongs[0]},
                        "fsync": {"datasync": wrongs[0]},
                    }[name]
                try:
                    op = getattr(ring, name)(*args, made, **kwargs)
                    if name in ("openat", "accept"):
                        makes_fds.add(op)
                except (TypeError, ValueError, OverflowError):
                    pass
                except OSError:
                    assert name == "connect"
            harness.run_for(0.02)
            ring.close()
            assert ring.in_flight() == 0
            for op, value in made.ops:
                if op in makes_fds and isinstance(value, int):
                    try:  # an fd openat or accept made: ours to close
                        os.close(value)
                    except OSError:
                        pass  # it took a number a fuzzed close_fd() then closed
            assert not harness.errors
        finally:
            ring.close()
            for f in (r, w, fd, a, b):
                try:
                    os.close(f)
                except OSError:
                    pass  # closed by a fuzzed close_fd()

    check()


def test_hostile_buffer_ring_and_ring_arguments(harness):
    """BufferRing(count, size, group) and Ring(loop, entries, cq_entries)
    with wrong values: TypeError or ValueError (OSError: the kernel's
    refusal), nothing left open."""

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(args=st.lists(st.one_of(WRONG, st.integers(0, 70000)), min_size=3, max_size=3))
    def check(args):
        try:
            ring = reactor.Ring(harness.loop, args[0], cq_entries=args[1])
        except (TypeError, ValueError):
            ring = reactor.Ring(harness.loop, 4)
        with ring:
            try:
                buffers = _bufring.BufferRing(ring, *args)
            except (TypeError, ValueError, OSError):
                return
            buffers.close()

    check()


# -- closing -------------------------------------------------------------------------------


def test_close_cancels_operations_in_flight_and_calls_them_back(harness):
    ring = reactor.Ring(harness.loop, 4)
    a, b = socket.socketpair()
    r, w = os.pipe()
    with a, b:
        results = Results()
        ops = [ring.recv(b, 10, results) for _ in range(3)]
        ops.append(ring.read(r, 10, -1, results))
        ops.append(ring.timeout(60, results))
        harness.run_once()
        assert ring.in_flight() == 5
        ring.close()
        assert len(results) == 5 and all(op.done() for op in ops)
        assert all(isinstance(v, OSError) and v.errno == errno.ECANCELED for v in results.values())
        assert ring.closed and ring.in_flight() == 0
        with pytest.raises(RuntimeError, match="closed"):
            ring.nop(results)
        ring.close()  # twice is fine
    os.close(r)
    os.close(w)


def test_close_from_inside_a_completion_callback(harness):
    ring = reactor.Ring(harness.loop, 4)
    results = Results()

    def close_it(op):
        results(op)
        ring.close()

    ring.nop(close_it)
    for _ in range(5):
        ring.nop(results)
    harness.run_until(lambda: ring.closed)
    assert len(results) == 6  # the other completions of the batch were delivered
    assert not harness.errors


def test_close_releases_the_listening_socket_of_a_multishot_accept(harness):
    """A pending multishot accept holds the listening socket in the kernel
    until its last CQE: close() waits for it, so the port is free after."""
    ring = reactor.Ring(harness.loop, 4)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ring.accept(listener, Results(), multishot=True)
    harness.run_once()
    ring.close()
    listener.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # EADDRINUSE if the kernel still held it


def test_open_and_close_many_rings_leaks_no_fd(harness):
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(300):
        reactor.Ring(harness.loop, 2).close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_an_unclosed_ring_warns_and_releases_its_fds(harness):
    gc.collect()
    before = set(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(20):
            reactor.Ring(harness.loop, 2).nop(lambda op: None)
        # The loop holds each ring's eventfd callback: drop them with the loop.
        harness.close()
        gc.collect()
    # (The rings' fds got numbers that were free before; the loop's own are gone.)
    assert set(os.listdir("/proc/self/fd")) <= before
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(unclosed) == 20 and all("unclosed Ring" in str(w.message) for w in unclosed)


def test_setup_failure_leaves_nothing_open(harness):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError):
        reactor.Ring(harness.loop, 0)
    with pytest.raises(ValueError):
        reactor.Ring(harness.loop, 8, cq_entries=4)
    with pytest.raises(TypeError):
        reactor.Ring(object())
    assert len(os.listdir("/proc/self/fd")) == before


# -- probe, availability ---------------------------------------------------------------------


def test_probe_and_features_name_what_the_kernel_has(ring):
    assert set(_probe._REQUIRED_OPS) <= ring.supported_ops
    assert set(_probe._REQUIRED_FEATURES) <= ring.features
    available = reactor.uring_available()
    assert available and available.errno is None
    assert available.ops == ring.supported_ops
    if os.uname().release >= "6.9":  # this machine: 6.18
        assert "FTRUNCATE" in ring.supported_ops
    assert ring.multishot_accept == ("SOCKET" in ring.supported_ops)


def test_newer_setup_flags_were_granted(ring):
    """[U10] the kernel here (6.18) takes the newest flag set."""
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    if release < (6, 6):  # pragma: no cover
        pytest.skip(f"kernel {os.uname().release} predates IORING_SETUP_NO_SQARRAY")
    assert ring.setup_flags & lib.IORING_SETUP_NO_SQARRAY
    assert ring.setup_flags & lib.IORING_SETUP_SUBMIT_ALL
    assert ring.setup_flags & lib.IORING_SETUP_COOP_TASKRUN


def _child(code, *, refuse=None):
    """Run `code` in a fresh interpreter (with io_uring_setup refused by a
    seccomp filter when refuse is an errno); its stdout."""
    prologue = "import sys; sys.path.insert(0, %r)\n" % os.path.dirname(__file__)
    if refuse is not None:
        prologue += f"from _seccomp import refuse_io_uring; refuse_io_uring({refuse})\n"
    proc = subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.ENOSYS], ids=["EPERM", "ENOSYS"])
def test_refused_io_uring_is_reported_and_ring_raises(refusal):
    out = _child(
        """
        import errno, reactor
        available = reactor.uring_available()
        print(bool(available), available.errno, available.reason)
        loop = reactor.Reactor()
        try:
            reactor.Ring(loop)
        except OSError as exc:
            print("raised", exc.errno)
        # nothing else changes: the Reactor runs
        loop.call_soon(loop.stop)
        loop.run()
        loop.close()
    """,
        refuse=refusal,
    )
    lines = out.splitlines()
    name = errno.errorcode[refusal]
    assert lines[0].startswith(f"False {refusal} io_uring_setup() refused: {name}"), lines
    if refusal == errno.EPERM:
        assert "seccomp" in lines[0]
    assert lines[1] == f"raised {refusal}"


# -- fork ------------------------------------------------------------------------------------


@pytest.mark.parametrize("harness", ["reactor"], indirect=True)
def test_a_forked_child_does_not_share_the_ring(harness, ring, datafile):
    """[U9] the child's Ring is closed and refuses work; the parent's goes on,
    including an operation in flight across the fork."""
    r, w = os.pipe()
    results = Results()
    pending = ring.read(r, 10, -1, results)
    harness.run_once()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its status
        status = 1
        try:
            if ring.closed and pending._user_data not in ring._ops:
                try:
                    ring.nop(print)
                except RuntimeError as exc:
                    if "parent" in str(exc):
                        # A ring of its own works.
                        with reactor.Reactor() as loop, reactor.Ring(loop) as mine:
                            done = []
                            mine.nop(done.append)
                            while not done:
                                loop.run_once(0.1)
                        ring.close()
                        status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.write(w, b"after fork")
    harness.run_until(pending.done)
    assert results.values() == [b"after fork"]
    assert one(harness, ring, lambda cb: ring.nop(cb)) is None
    os.close(r)
    os.close(w)


# -- provided buffers ------------------------------------------------------------------------


def test_buffer_ring_recv_gives_and_takes_buffers(harness, ring):
    buffers = _bufring.BufferRing(ring, 2, 16)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"first")
        buffer_id, n = one(harness, ring, lambda cb: buffers.recv(b, cb))
        assert bytes(buffers.view(buffer_id, n)) == b"first" and buffers.taken == 1
        a.sendall(b"second message longer than 16")
        id2, n2 = one(harness, ring, lambda cb: buffers.recv(b, cb))
        assert id2 != buffer_id and bytes(buffers.view(id2, n2)) == b"second message l"
        got = one(harness, ring, lambda cb: buffers.recv(b, cb))  # both buffers taken
        assert isinstance(got, OSError) and got.errno == errno.ENOBUFS
        buffers.give_back(buffer_id)
        buffers.give_back(id2)
        assert buffers.taken == 0
        id3, n3 = one(harness, ring, lambda cb: buffers.recv(b, cb))
        assert bytes(buffers.view(id3, n3)) == b"onger than 16"
        buffers.give_back(id3)
        a.close()
        assert one(harness, ring, lambda cb: buffers.recv(b, cb)) == (None, 0)
    buffers.close()
    with pytest.raises(RuntimeError):
        buffers.recv(0, print)


def test_a_buffer_given_back_twice_is_refused(harness, ring):
    """Regression: give_back() did not check that the buffer was out; a
    second give_back put it in the kernel's ring twice, and two recvs could
    then fill one buffer at once."""
    buffers = _bufring.BufferRing(ring, 2, 16)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"one")
        buffer_id, n = one(harness, ring, lambda cb: buffers.recv(b, cb))
        buffers.give_back(buffer_id)
        with pytest.raises(ValueError, match="not taken"):
            buffers.give_back(buffer_id)
        with pytest.raises(ValueError, match="not taken"):
            buffers.give_back(1 - buffer_id)  # never picked
        assert buffers.taken == 0
    buffers.close()


def test_an_idle_recv_waits_for_data_not_for_a_buffer(harness, ring):
    """A buffer-select recv tried at once fails with ENOBUFS on an idle
    socket when the pool is empty; with poll_first (the default) it waits
    for data first [U12]."""
    buffers = _bufring.BufferRing(ring, 1, 8)
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d:
        a.sendall(b"takes it")
        buffer_id, n = one(harness, ring, lambda cb: buffers.recv(b, cb))  # the only buffer
        tried_at_once = buffers.recv(d, Results(), poll_first=False)
        harness.run_until(tried_at_once.done)
        assert tried_at_once.exception().errno == errno.ENOBUFS
        idle = Results()
        op = buffers.recv(d, idle)
        harness.run_for(0.05)
        assert not op.done()  # waiting for data, not failed for want of a buffer
        buffers.give_back(buffer_id)
        c.sendall(b"now")
        harness.run_until(op.done)
        got_id, got_n = idle.values()[0]
        assert bytes(buffers.view(got_id, got_n)) == b"now"
        buffers.give_back(got_id)
    buffers.close()


# -- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("harness", ["reactor"], indirect=True)
def test_a_signal_during_a_blocking_close_wait_loses_nothing(harness):
    """close() waits in io_uring_enter; a signal handler running meanwhile
    (EINTR) does not end the wait early."""
    ring = reactor.Ring(harness.loop, 4)
    results = Results()
    old = signal.signal(signal.SIGALRM, lambda *a: None)
    try:
        r, w = os.pipe()
        ring.read(r, 10, -1, results)
        harness.run_once()
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        ring.close()
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert len(results) == 1 and results.values()[0].errno == errno.ECANCELED
        os.close(r)
        os.close(w)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
