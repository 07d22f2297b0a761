"""reactor.open_file / read_bytes / write_bytes (reactor/uring/_files.py).

Differential: every sequence of operations is done on our file object and
on an unbuffered io.FileIO over a twin file (the reference), and both must
give the same results and leave the same bytes.  Each test runs on both
backends (io_uring, and the thread pool it falls back to) and on three
loops: asyncio's default, reactor's (reactor.new_event_loop()) and uvloop.
"""

import asyncio
import errno
import gc
import io
import os
import random
import socket
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reactor
from reactor.uring import _uring_files
from _ringloops import uvloop

URING = reactor.uring_available()
needs_uring = pytest.mark.skipif(not URING, reason=f"{URING.reason}")

LOOPS = {
    "asyncio": asyncio.new_event_loop,
    "reactor": reactor.new_event_loop,
    "uvloop": uvloop.new_event_loop if uvloop is not None else None,
}
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=["io_uring", "thread"])
def backend(request):
    if request.param == "io_uring" and not URING:
        pytest.skip(URING.reason)
    return request.param


@pytest.fixture(params=list(LOOPS))
def loop(request):
    make = LOOPS[request.param]
    if make is None:
        pytest.skip("uvloop is not installed (pip install uvloop)")
    loop = make()
    yield loop
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    # pytest holds the loop until after the fd-leak check: release its ring
    # now (test_one_ring_per_loop_released_with_the_loop checks the real way).
    _uring_files._release_loop_ring(loop)


@pytest.fixture
def twins(tmp_path):
    """Two files with the same 20 KiB: ours and the reference's."""
    content = bytes(random.Random(7).getrandbits(8) for _ in range(20000))
    ours, ref = tmp_path / "ours", tmp_path / "ref"
    ours.write_bytes(content)
    ref.write_bytes(content)
    return ours, ref


def outcome(value_or_exc):
    if isinstance(value_or_exc, BaseException):
        return ("raise", type(value_or_exc), getattr(value_or_exc, "errno", None))
    return ("return", value_or_exc)


async def ours_do(f, step):
    name, *args = step
    try:
        return await getattr(f, name)(*args)
    except (OSError, ValueError) as exc:
        return exc


def ref_do(f, step):
    name, *args = step
    try:
        if name == "pread":
            return os.pread(f.fileno(), *args)
        if name == "pwrite":
            return os.pwrite(f.fileno(), *args)
        if name == "read" and args and args[0] is not None and args[0] >= 0:
            # FileIO.read(n) returns at most one read(2); so does ours for a
            # regular file, but a FileIO read may stop short at any size:
            # read until n bytes or EOF, as ours does.
            chunks, want = [], args[0]
            while want:
                chunk = f.read(want)
                if not chunk:
                    break
                chunks.append(chunk)
                want -= len(chunk)
            return b"".join(chunks)
        if name == "stat":
            return os.fstat(f.fileno()).st_size
        if name in ("fsync", "flush"):
            return None
        result = getattr(f, name)(*args)
        return len(args[0]) if name == "write" else result
    except (OSError, ValueError) as exc:
        return exc


async def both(f, ref, steps):
    for step in steps:
        mine = await ours_do(f, step)
        if step[0] == "stat" and not isinstance(mine, BaseException):
            mine = mine.st_size
        theirs = ref_do(ref, step)
        assert outcome(mine) == outcome(theirs), (step, mine, theirs)


STEPS = [
    ("read", 10),
    ("tell",),
    ("read", 0),
    ("seek", 5),
    ("read", 7),
    ("seek", -3, os.SEEK_CUR),
    ("read", 100),
    ("seek", 0, os.SEEK_END),
    ("read", 10),
    ("write", b"appended"),
    ("tell",),
    ("seek", 19990),
    ("read",),
    ("read", None),
    ("seek", 100),
    ("write", bytearray(b"overwrite")),
    ("write", memoryview(b"more")),
    ("tell",),
    ("pread", 50, 95),
    ("pwrite", b"PW", 3),
    ("pread", 10, 0),
    ("tell",),
    ("truncate", 500),
    ("tell",),
    ("stat",),
    ("seek", 0),
    ("read", -1),
    ("truncate",),
    ("stat",),
    ("seek", 1000),
    ("write", b"hole"),
    ("seek", 0),
    ("read",),
    ("fsync",),
    ("flush",),
    ("seek", -1),
    ("seek", 0, 7),
    ("pread", 10, 100000),
    ("read", 3),
]


def test_every_operation_matches_fileio(loop, backend, twins):
    ours, ref_path = twins

    async def main():
        async with reactor.open_file(ours, "r+b", backend=backend) as f:
            assert f.backend == backend
            with open(ref_path, "r+b", buffering=0) as ref:
                await both(f, ref, STEPS)
        assert f.closed

    loop.run_until_complete(main())
    assert ours.read_bytes() == ref_path.read_bytes()


OPS = st.one_of(
    st.tuples(st.just("read"), st.one_of(st.none(), st.integers(-2, 30000))),
    st.tuples(st.just("write"), st.binary(max_size=3000)),
    st.tuples(
        st.just("seek"),
        st.integers(-100, 25000),
        st.sampled_from([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END]),
    ),
    st.tuples(st.just("tell")),
    st.tuples(st.just("pread"), st.integers(0, 30000), st.integers(0, 25000)),
    st.tuples(st.just("pwrite"), st.binary(max_size=3000), st.integers(0, 25000)),
    st.tuples(st.just("truncate"), st.one_of(st.none(), st.integers(0, 25000))),
)


@pytest.mark.parametrize("mode", ["r+b", "a+b", "w+b"])
def test_sequences_match_fileio(loop, backend, twins, mode):
    """Hypothesis: any sequence of read/write/seek/tell/pread/pwrite/truncate
    gives what io.FileIO gives, and leaves the same bytes."""
    ours, ref_path = twins
    content = ours.read_bytes()

    @SETTINGS
    @given(st.lists(OPS, max_size=25))
    def check(steps):
        ours.write_bytes(content)
        ref_path.write_bytes(content)

        async def main():
            async with reactor.open_file(ours, mode, backend=backend) as f:
                with open(ref_path, mode, buffering=0) as ref:
                    await both(f, ref, steps)

        loop.run_until_complete(main())
        assert ours.read_bytes() == ref_path.read_bytes()

    check()


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, (1 << 20) + 3])
def test_read_bytes_and_write_bytes_match_pathlib(loop, backend, tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"

    async def main():
        assert await reactor.write_bytes(path, data, backend=backend) == size
        assert path.read_bytes() == data
        assert await reactor.read_bytes(path, backend=backend) == data
        # write_bytes truncates, as pathlib's
        assert await reactor.write_bytes(path, b"x", backend=backend) == 1
        assert await reactor.read_bytes(str(path).encode(), backend=backend) == b"x"

    loop.run_until_complete(main())


@needs_uring
@pytest.mark.parametrize("trips", ["one trip", "two trips"])
@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 69632, 69633, 300_000])
def test_read_bytes_around_its_two_reads(loop, tmp_path, monkeypatch, size, trips):
    """[F7] sizes at the edges of the 64 KiB + 4 KiB the chain reads, with
    direct-descriptor slots [U16] and without (before 5.19, or all taken)."""
    if trips == "two trips":
        monkeypatch.setattr(reactor.Ring, "_free_slots", lambda ring: None)
    path = tmp_path / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    assert loop.run_until_complete(reactor.read_bytes(path)) == data


@needs_uring
@pytest.mark.parametrize("trips", ["one trip", "two trips"])
def test_read_bytes_errors_are_pathlibs(loop, tmp_path, monkeypatch, trips):
    if trips == "two trips":
        monkeypatch.setattr(reactor.Ring, "_free_slots", lambda ring: None)

    async def main():
        for path in (tmp_path / "missing", tmp_path):
            with pytest.raises(OSError) as ours:
                await reactor.read_bytes(path)
            with pytest.raises(OSError) as theirs:
                path.read_bytes()
            assert type(ours.value) is type(theirs.value)
            assert ours.value.errno == theirs.value.errno

    loop.run_until_complete(main())


@needs_uring
def test_read_bytes_gives_back_every_slot(loop, tmp_path):
    """Slots come back when their close completes [U16], also from reads
    whose awaiters were cancelled, and from more reads at once than slots."""
    paths = []
    for i in range(300):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(b"%d" % i)

    async def main():
        ring = _uring_files._loop_ring(asyncio.get_running_loop())
        slots = ring._free_slots()
        total = len(slots)
        got = await asyncio.gather(*(reactor.read_bytes(p) for p in paths))
        assert got == [b"%d" % i for i in range(300)]
        tasks = [asyncio.ensure_future(reactor.read_bytes(p)) for p in paths[:50]]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(100):
            if len(slots) == total:
                break
            await asyncio.sleep(0.01)
        assert sorted(slots) == list(range(total))

    loop.run_until_complete(main())


@needs_uring
def test_read_bytes_sees_a_file_that_grew_after_the_open(loop, tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"first part;")
    real_chain = reactor.Ring._start_chain

    def grow_then_chain(ring, steps):
        with open(path, "ab") as f:
            f.write(b" and what came after" * 5000)
        return real_chain(ring, steps)

    monkeypatch.setattr(reactor.Ring, "_start_chain", grow_then_chain)
    data = loop.run_until_complete(reactor.read_bytes(path))
    assert data == b"first part;" + b" and what came after" * 5000


@needs_uring
@pytest.mark.parametrize("size", [0, 10, 100_000])
def test_read_and_write_bytes_without_room_for_a_chain(loop, tmp_path, monkeypatch, size):
    """With no room in the SQ for a chain, one step at a time [U15]."""
    monkeypatch.setattr(reactor.Ring, "_start_chain", lambda ring, steps: None)
    path = tmp_path / "f"
    data = os.urandom(size)

    async def main():
        assert await reactor.write_bytes(path, data) == size
        assert await reactor.read_bytes(path) == data

    loop.run_until_complete(main())
    assert path.read_bytes() == data


@pytest.mark.parametrize("backend", ["io_uring", "thread"])
def test_write_bytes_past_the_file_size_limit_fails_as_pathlib(backend, tmp_path):
    """RLIMIT_FSIZE makes the write short, then EFBIG: write_bytes raises
    what pathlib raises and leaves what pathlib leaves."""
    if backend == "io_uring" and not URING:
        pytest.skip(URING.reason)
    code = f"""
        import asyncio, os, pathlib, resource, signal
        import reactor
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
        data = bytes(range(256)) * 20
        for name, write in [("pathlib", lambda p: pathlib.Path(p).write_bytes(data)),
                            ("reactor", lambda p: asyncio.run(reactor.write_bytes(
                                p, data, backend={backend!r})))]:
            path = os.path.join({str(tmp_path)!r}, name)
            try:
                write(path)
            except OSError as exc:
                print(name, exc.errno, len(open(path, "rb").read()))
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines == ["pathlib", str(errno.EFBIG), "1000", "reactor", str(errno.EFBIG), "1000"]


def test_read_all_of_files_whose_size_says_nothing(loop, backend):
    """/proc files report size 0; read(-1) reads to EOF anyway [F3]."""

    async def main():
        return await reactor.read_bytes("/proc/self/status", backend=backend)

    data = loop.run_until_complete(main())
    assert data.startswith(b"Name:") and b"VmRSS" in data


def test_modes_open_as_builtin_open(loop, backend, tmp_path):
    path = tmp_path / "f"

    async def main():
        with pytest.raises(FileNotFoundError):
            await reactor.open_file(path, "rb", backend=backend)
        async with reactor.open_file(path, "xb", backend=backend) as f:
            await f.write(b"created")
            assert f.writable() and not f.readable()
            with pytest.raises(io.UnsupportedOperation):
                await f.read()
        with pytest.raises(FileExistsError):
            await reactor.open_file(path, "xb", backend=backend)
        async with reactor.open_file(path, "ab", backend=backend) as f:
            assert await f.tell() == 7
            await f.write(b"+more")
        async with reactor.open_file(path, "rb", backend=backend) as f:
            assert f.readable() and not f.writable()
            assert await f.read() == b"created+more"
            with pytest.raises(io.UnsupportedOperation):
                await f.write(b"no")
        f = await reactor.open_file(path, "wb", backend=backend)
        try:
            assert path.read_bytes() == b""
            assert f.name == path and f.mode == "wb" and isinstance(f.fileno(), int)
        finally:
            await f.close()
        await f.close()  # twice is fine
        with pytest.raises(ValueError, match="closed"):
            await f.write(b"late")
        with pytest.raises(ValueError, match="closed"):
            f.fileno()

    loop.run_until_complete(main())


def test_an_fd_can_be_wrapped(loop, backend, twins):
    ours, _ = twins
    fd = os.open(ours, os.O_RDONLY)
    os.lseek(fd, 100, os.SEEK_SET)

    async def main():
        async with reactor.open_file(fd, "rb", closefd=False, backend=backend) as f:
            assert await f.tell() == 100  # where the fd was, as open(fd)
            return await f.read(5)

    try:
        assert loop.run_until_complete(main()) == ours.read_bytes()[100:105]
        os.fstat(fd)  # still open: closefd=False
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", ["r", "w", "rt", "rb+x", "rbb", "", "q", "rw", "b"])
def test_bad_modes_are_valueerror_at_once(backend, mode):
    with pytest.raises(ValueError):
        reactor.open_file("whatever", mode, backend=backend)


def test_bad_arguments_are_typeerror_at_once():
    with pytest.raises(TypeError):
        reactor.open_file(3.5)
    with pytest.raises(TypeError):
        reactor.open_file("f", b"rb")
    with pytest.raises(ValueError):
        reactor.open_file("f", backend="threads")
    with pytest.raises(ValueError):
        reactor.open_file("f", closefd=False)


# -- streams ------------------------------------------------------------------------


def test_a_fifo_is_read_and_written_as_a_stream(loop, backend, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        # r+b: a FIFO opened for reading and writing does not block open()
        async with reactor.open_file(fifo, "r+b", backend=backend) as f:
            await f.write(b"through the fifo")
            assert await f.read(7) == b"through"
            assert await f.pread(100, 123) == b" the fifo"  # offsets mean nothing here
            with pytest.raises(OSError) as info:
                await f.seek(0)
            assert info.value.errno == errno.ESPIPE

    loop.run_until_complete(main())


def test_a_fifo_opened_for_reading_waits_for_a_writer(loop, backend, tmp_path):
    """Regression: io_uring opened a FIFO for reading at once (its open
    tries O_NONBLOCK first) and the first read, with no writer, was EOF.
    Now open_file() and read_bytes() wait for a writer, as open(2) and the
    thread backend do [F6], and read what it writes until it closes."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def read_all():
        async with reactor.open_file(fifo, "rb", backend=backend) as f:
            return await f.read()

    async def main():
        for reader in (read_all, lambda: reactor.read_bytes(fifo, backend=backend)):
            task = asyncio.ensure_future(reader())
            await asyncio.sleep(0.1)
            assert not task.done()  # no writer yet
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader waits: no ENXIO
            os.write(writer, b"from the writer")
            os.close(writer)
            assert await asyncio.wait_for(task, 5) == b"from the writer"

    loop.run_until_complete(main())


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_cancelled_reads_of_a_stream_lose_nothing(loop, backend, tmp_path, kind):
    """Regression: a read whose awaiter was cancelled after the kernel (or
    the worker thread) had read dropped those bytes, and on a stream they
    are gone from the kernel: the docstring's "the next read reads it
    again" held for regular files only.  Now the file keeps them and the
    next read returns them first [F2]: a reader cancelled at random points
    gets every byte once, in order."""
    content = bytes(random.Random(5).getrandbits(8) for _ in range(20000))
    rng = random.Random(11)
    if kind == "fifo":
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        keep_open = os.open(fifo, os.O_RDWR)  # a writer end for the test's life
        source, target = None, fifo
        os.write(keep_open, content)
    else:
        source, sink = socket.socketpair()
        source.sendall(content)
        keep_open, target = sink, sink.fileno()

    async def reader(f, chunks):
        while sum(map(len, chunks)) < len(content):
            chunks.append(await f.read(rng.randrange(1, 300)))

    async def main():
        chunks = []
        cancels = 0
        opened = reactor.open_file(
            target, "rb", backend=backend, **({} if kind == "fifo" else {"closefd": False})
        )
        async with opened as f:
            while True:
                task = asyncio.ensure_future(reader(f, chunks))
                for _ in range(rng.randrange(0, 8)):
                    await asyncio.sleep(0)
                if task.done():
                    await task
                    break
                task.cancel()
                try:
                    await asyncio.wait_for(task, 5)
                except asyncio.CancelledError:
                    cancels += 1
                else:
                    break
        return b"".join(chunks), cancels

    try:
        data, cancels = loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        if kind == "fifo":
            os.close(keep_open)
        else:
            source.close()
            keep_open.close()
    assert data == content
    assert cancels > 3


# -- cancellation [F2] ------------------------------------------------------------------


def test_cancelled_reads_lose_and_repeat_nothing(loop, backend, twins):
    """A reader cancelled at random points and started again reads every
    byte exactly once: a cancelled read does not move the position."""
    ours, _ = twins
    content = ours.read_bytes()
    rng = random.Random(3)

    async def reader(f, chunks):
        while True:
            chunk = await f.read(rng.randrange(1, 4000))
            if not chunk:
                return
            chunks.append(chunk)

    async def main():
        chunks = []
        cancels = 0
        async with reactor.open_file(ours, "rb", backend=backend) as f:
            while True:
                task = asyncio.ensure_future(reader(f, chunks))
                # (A thread's read takes a few loop turns, io_uring's two.)
                for _ in range(rng.randrange(0, 12)):
                    await asyncio.sleep(0)
                if task.done():
                    await task
                    break
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    cancels += 1
                else:
                    break
        return b"".join(chunks), cancels

    data, cancels = loop.run_until_complete(main())
    assert data == content
    assert cancels > 3


@needs_uring
def test_cancelling_a_pending_read_cancels_the_kernel_operation(loop, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        async with reactor.open_file(fifo, "r+b") as f:
            ring = f._ring
            task = asyncio.ensure_future(f.read(10))
            await asyncio.sleep(0.05)
            assert ring.in_flight() == 1  # the read waits in the kernel
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):
                if not ring.in_flight():
                    break
                await asyncio.sleep(0.01)
            assert ring.in_flight() == 0  # the kernel let go of the buffer
            await f.write(b"data")  # and nothing was consumed
            assert await f.read(10) == b"data"

    loop.run_until_complete(main())


def test_a_cancelled_open_leaks_no_fd(loop, backend, tmp_path):
    """The awaiter of an open is cancelled after the open was handed over
    (the SQE prepared, or the worker thread started) and before its result
    is delivered: the fd it produces is closed [F2]."""
    path = tmp_path / "f"
    path.write_bytes(b"x")

    async def main():
        await reactor.read_bytes(path, backend=backend)  # the ring, the threads: made
        before = set(os.listdir("/proc/self/fd"))
        for delay in range(6):
            task = asyncio.ensure_future(reactor.open_file(path, "rb", backend=backend))
            for _ in range(delay):
                await asyncio.sleep(0)
            task.cancel()
            try:
                f = await task
            except asyncio.CancelledError:
                pass
            else:  # it won the race: a file like any other
                await f.close()
        for _ in range(100):  # the kernel or the worker thread finishes
            await asyncio.sleep(0.001)
        assert set(os.listdir("/proc/self/fd")) <= before

    loop.run_until_complete(main())


# -- close with operations in flight [F5] -----------------------------------------------------


@needs_uring
def test_close_cancels_reads_in_flight(loop, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        f = await reactor.open_file(fifo, "r+b")
        reads = [asyncio.ensure_future(f.pread(10, 0)) for _ in range(3)]
        await asyncio.sleep(0.05)
        await f.close()
        results = await asyncio.gather(*reads, return_exceptions=True)
        assert all(isinstance(r, OSError) and r.errno == errno.ECANCELED for r in results), results
        assert f._ring.in_flight() == 0

    loop.run_until_complete(main())


def test_close_waits_for_running_threads(loop, tmp_path):
    """The thread backend cannot cancel a running call: close() waits."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        f = await reactor.open_file(fifo, "r+b", backend="thread")
        read = asyncio.ensure_future(f.pread(10, 0))
        await asyncio.sleep(0.05)
        writer = os.open(fifo, os.O_WRONLY)
        asyncio.get_running_loop().call_later(0.1, os.write, writer, b"late")
        await f.close()
        assert read.done() and read.result() == b"late"
        os.close(writer)

    loop.run_until_complete(main())


# -- the per-loop ring [F4] -----------------------------------------------------------------


@needs_uring
def test_one_ring_per_loop_released_with_the_loop(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    gc.collect()
    before = set(os.listdir("/proc/self/fd"))

    async def main():
        await reactor.read_bytes(path)
        ring = _uring_files._rings[asyncio.get_running_loop()]
        await reactor.read_bytes(path)
        assert _uring_files._rings[asyncio.get_running_loop()] is ring
        return ring

    loop = asyncio.new_event_loop()
    ring = loop.run_until_complete(main())
    loop.close()
    assert not ring.closed  # as long as the loop object lives
    del loop
    gc.collect()
    assert ring.closed
    assert set(os.listdir("/proc/self/fd")) <= before
    assert asyncio.run(main()).closed  # asyncio.run() drops its loop


@needs_uring
def test_a_forked_child_gets_its_own_ring(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"shared")
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(reactor.read_bytes(path)) == b"shared"
        parent_ring = _uring_files._rings[loop]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - reports through its status
            status = 1
            try:
                child_loop = asyncio.new_event_loop()
                ok = child_loop.run_until_complete(reactor.read_bytes(path)) == b"shared"
                ok = (
                    ok
                    and _uring_files._rings[child_loop] is not parent_ring
                    and parent_ring.closed
                )
                child_loop.close()
                status = 0 if ok else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not parent_ring.closed
        assert loop.run_until_complete(reactor.read_bytes(path)) == b"shared"
    finally:
        loop.close()


# -- where io_uring is refused [U11] ------------------------------------------------------------


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.ENOSYS], ids=["EPERM", "ENOSYS"])
def test_refused_io_uring_falls_back_to_threads(refusal, tmp_path):
    path = tmp_path / "f"
    code = f"""
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        from _seccomp import refuse_io_uring; refuse_io_uring({refusal})
        import asyncio, errno, reactor
        async def main():
            await reactor.write_bytes({str(path)!r}, b"fallback")
            async with reactor.open_file({str(path)!r}, "r+b") as f:
                print(f.backend, await f.read(), await f.pread(4, 4))
            print(await reactor.read_bytes({str(path)!r}))
            try:
                reactor.open_file({str(path)!r}, backend="io_uring")
            except OSError as exc:
                print("io_uring refused:", exc.errno)
        asyncio.run(main())
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "thread b'fallback' b'back'",
        "b'fallback'",
        f"io_uring refused: {refusal}",
    ]


# -- hostile input -------------------------------------------------------------------------------


# Ints: small ones, or ones past every limit.  (Valid huge ones are no
# hostile input: truncate(2**40) then read() would read a terabyte, as
# io.FileIO would.)
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**20),
    st.integers(2**63, 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.sampled_from([[], {}, object(), bytearray(b"ab"), memoryview(b"cd"), socket.AF_INET]),
)
DOCUMENTED = (TypeError, ValueError, OverflowError, OSError)


def test_hostile_arguments_raise_only_documented_errors(loop, backend, twins):
    """Fuzzing: every public method with wrong types and values raises
    TypeError, ValueError, OverflowError or OSError (io.UnsupportedOperation
    is both), never anything else, and the file stays usable."""
    ours, _ = twins
    content = ours.read_bytes()

    @SETTINGS
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["read", "write", "seek", "pread", "pwrite", "truncate", "tell"]),
                st.lists(WRONG, max_size=3),
            ),
            max_size=8,
        )
    )
    def check(calls):
        ours.write_bytes(content)

        async def main():
            async with reactor.open_file(ours, "r+b", backend=backend) as f:
                for name, args in calls:
                    try:
                        await getattr(f, name)(*args)
                    except DOCUMENTED:
                        pass
                assert await f.pread(4, 0) == (await reactor.read_bytes(ours))[:4]

        loop.run_until_complete(main())

    check()


def test_hostile_open_arguments(tmp_path):
    """open_file() with wrong paths, modes, closefd and backend values:
    documented errors only, at once or when awaited.  (Paths stay inside
    tmp_path, and fds are never ones the process uses: a wrapped fd would
    be closed.)"""
    paths = st.one_of(
        st.sampled_from(
            [
                tmp_path / "a",
                str(tmp_path / "b"),
                tmp_path / "no" / "c",
                str(tmp_path / "d").encode(),
                str(tmp_path / "e\0"),
            ]
        ),
        st.integers(-(2**70), -1),
        st.integers(2**31, 2**70),
        st.sampled_from([None, 1.5, [], object(), True]),
    )

    @SETTINGS
    @given(
        path=paths,
        mode=st.one_of(st.text(max_size=4), WRONG),
        closefd=WRONG,
        backend=st.one_of(st.sampled_from([None, "thread"]), WRONG),
    )
    def check(path, mode, closefd, backend):
        try:
            opening = reactor.open_file(path, mode, closefd=closefd, backend=backend)
        except DOCUMENTED:
            return

        async def main():
            try:
                f = await opening
            except DOCUMENTED:
                return
            await f.close()

        asyncio.run(main())

    check()


@pytest.mark.parametrize("path", [True, 1, 0])
def test_read_and_write_bytes_take_no_fd(backend, path):
    """Regression: write_bytes(True, ..., backend="thread") went to open(),
    which takes an int for an fd: it wrote to fd 1 and closed it.  Paths
    only, as pathlib (TypeError)."""

    async def main():
        with pytest.raises(TypeError):
            await reactor.write_bytes(path, b"", backend=backend)
        with pytest.raises(TypeError):
            await reactor.read_bytes(path, backend=backend)

    asyncio.run(main())
    os.fstat(1)  # still open


def test_hostile_read_bytes_and_write_bytes(tmp_path):
    """read_bytes(path) and write_bytes(path, data) with wrong paths, data
    and backends: documented errors only; right ones round-trip."""
    paths = st.one_of(
        st.sampled_from(
            [
                tmp_path / "a",
                str(tmp_path / "b"),
                tmp_path / "no" / "c",
                str(tmp_path / "d").encode(),
                str(tmp_path / "e\0"),
                tmp_path,
            ]
        ),
        st.sampled_from([None, 1.5, [], object(), True, -1, 2**70]),
    )
    datas = st.one_of(
        st.binary(max_size=70_000),
        st.sampled_from([bytearray(b"ab"), memoryview(b"cd"), "text", None, 3, [1, 2], object()]),
    )

    @SETTINGS
    @given(path=paths, data=datas, backend=st.one_of(st.sampled_from([None, "thread"]), WRONG))
    def check(path, data, backend):
        async def main():
            try:
                written = await reactor.write_bytes(path, data, backend=backend)
            except DOCUMENTED:
                written = None
            try:
                got = await reactor.read_bytes(path, backend=backend)
            except DOCUMENTED:
                return
            if written is not None:
                assert got == bytes(data)

        asyncio.run(main())

    check()


@needs_uring
def test_cancelling_a_pending_open_cancels_the_kernel_operation(loop, tmp_path):
    """An open that waits in the kernel (a FIFO opened for writing, no
    reader) is cancelled there when its awaiter is [F2], as a read is.
    (Opened for reading it would not wait: io_uring tries the open with
    O_NONBLOCK first, which a FIFO's reading end accepts at once.)"""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main():
        task = asyncio.ensure_future(reactor.open_file(fifo, "wb"))
        await asyncio.sleep(0.05)
        ring = _uring_files._loop_ring(asyncio.get_running_loop())
        assert ring.in_flight() == 1  # the open waits in the kernel
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if not ring.in_flight():
                break
            await asyncio.sleep(0.01)
        assert ring.in_flight() == 0

    loop.run_until_complete(main())
