"""The io_uring backend of open_file(), read_bytes() and write_bytes():
each call is one operation (or a short chain [U15]) on the running loop's
ring, one ring per loop [F4].  The facts [F*] are in _files.py's docstring,
the kernel's [U*] in docs/io_uring.md.
"""

from __future__ import annotations

import asyncio
import os
import stat
import weakref
from asyncio.events import _get_running_loop

from .._native import ffi, lib
from ._asyncfile import AsyncFile, _CancelledError, _check_loop, _open_flags
from ._ops import StatxResult, _new_buffer, _oserror, _path, _readable_buffer
from ._ring import Ring

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Coroutine

_prep = lib.reactor_ring_prep
_prep_ext = lib.reactor_ring_prep_ext
_prep_slot = lib.reactor_ring_prep_slot
_OP_READ = lib.IORING_OP_READ
_OP_WRITE = lib.IORING_OP_WRITE
_OP_OPENAT = lib.IORING_OP_OPENAT
_OP_STATX = lib.IORING_OP_STATX
_OP_CLOSE = lib.IORING_OP_CLOSE
_OP_FSYNC = lib.IORING_OP_FSYNC
_OP_FTRUNCATE = lib.IORING_OP_FTRUNCATE
_STATX_MASK = lib.STATX_BASIC_STATS | lib.STATX_BTIME
# read_bytes(): what its first read asks for, and the read after it that
# must find the end [F7].
_FIRST_READ = 64 * 1024
_SECOND_READ = 4096
# Buffer pairs for those reads, back from reads the kernel finished.
_read_buffers: list = []
_READ_BUFFERS_KEPT = 64

_rings: "weakref.WeakKeyDictionary[Any, Ring]" = weakref.WeakKeyDictionary()

_last = (lambda: None, None)  # (weakref to a loop, its ring): one dict lookup saved


def _loop_ring(loop):
    """The running loop's ring [F4]."""
    global _last
    if _last[0]() is loop and not _last[1]._closed:
        return _last[1]
    ring = _rings.get(loop)
    if ring is None or ring._closed:
        if ring is not None:
            ring.close()  # a ring inherited across fork: the child's fds [U9]
        ring = Ring(loop, 256)
        ring._implicit = True
        _rings[loop] = ring
        weakref.finalize(loop, ring.close)
    _last = (weakref.ref(loop), ring)
    return ring


def _release_loop_ring(loop):
    """Close `loop`'s ring now rather than when the loop is collected
    (for a closed loop that is kept referenced, as pytest keeps fixtures)."""
    ring = _rings.pop(loop, None)
    if ring is not None:
        ring.close()


def _done_into(fut, convert, orphan=None):
    """A ring callback that completes an asyncio future; when the future
    was cancelled before the result came, `orphan` takes the result [F2]."""

    def done(res, flags):
        if fut.done():  # cancelled meanwhile: nobody wants the result
            if orphan is not None:
                orphan(res, flags)
        elif res >= 0:
            fut.set_result(convert(res))
        else:
            fut.set_exception(_oserror(-res))

    return done


def _close_on_success(res, flags):
    # [F2] an open nobody awaits any more: its fd is ours to close.
    if res >= 0:
        os.close(res)


async def _await(ring, fut, user_data, orphan=None):
    """Await a ring operation's future; cancelled, cancel the operation [F2]."""
    try:
        return await fut
    except _CancelledError:
        _abandon(ring, fut, user_data, orphan)
        raise


def _abandon(ring, fut, user_data, orphan=None):
    """The task awaiting `fut` was cancelled: cancel the operation, or hand
    a result that came anyway to `orphan` [F2]."""
    if fut.cancelled() or not fut.done():
        # Still in flight (cancelling the task cancelled `fut`, which
        # leaves the kernel's operation running): cancel that too.
        ring._orphan(user_data, orphan)
        ring._cancel(user_data)
    elif orphan is not None and fut.exception() is None:
        # The result came, then the task was cancelled before it ran
        # again: asyncio throws CancelledError instead of the result.
        orphan(fut.result(), 0)


def _opening_cancelled(ring, fut, user_data):
    _abandon(ring, fut, user_data, _close_on_success)


def _uring_open(ring, loop, cpath, flags, mode):
    fut = loop.create_future()
    user_data = ring._start(
        _prep,
        (_OP_OPENAT, lib.AT_FDCWD, cpath, mode, 0, flags),
        _done_into(fut, int, _close_on_success),
        cpath,
    )
    return _await(ring, fut, user_data, _close_on_success)


def _is_fifo(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)  # (no IO: the inode is in memory)
    except BaseException:
        os.close(fd)
        raise


async def _wait_for_a_writer(ring, loop, cpath, flags, fd):
    """[F6] A FIFO io_uring opened for reading without waiting for a writer:
    open it again in an io-wq worker (IOSQE_ASYNC: no O_NONBLOCK try),
    which waits for a writer as open(2) does; the first fd, a reader all
    along (a writer waiting in its open(2) is not let down), is closed once
    that open is over."""
    try:
        fut = loop.create_future()
        user_data = ring._start(
            _prep_ext,
            (_OP_OPENAT, lib.AT_FDCWD, cpath, 0o666, 0, flags, ffi.NULL, 0, lib.IOSQE_ASYNC, 0),
            _done_into(fut, int, _close_on_success),
            cpath,
        )
        return await _await(ring, fut, user_data, _close_on_success)
    finally:
        os.close(fd)


def _uring_statx(ring, loop, fd):
    stx = ffi.new("struct statx *")
    empty = ffi.new("char[]", b"")
    fut = loop.create_future()
    user_data = ring._start(
        _prep_ext,
        (_OP_STATX, fd, empty, _STATX_MASK, 0, lib.AT_EMPTY_PATH, stx, 0, 0, 0),
        _done_into(fut, lambda res: StatxResult(stx)),
        (empty, stx),
    )
    return _await(ring, fut, user_data)


async def _names_a_fifo(ring, loop, cpath):
    """Whether the path is a FIFO (a statx: asked only of files that read
    empty)."""
    stx = ffi.new("struct statx *")
    fut = loop.create_future()
    user_data = ring._start(
        _prep_ext,
        (_OP_STATX, lib.AT_FDCWD, cpath, _STATX_MASK, 0, 0, stx, 0, 0, 0),
        _done_into(fut, lambda res: stat.S_ISFIFO(stx.stx_mode)),
        (cpath, stx),
    )
    try:
        return await _await(ring, fut, user_data)
    except OSError:
        return False  # gone or changed since: what was read stands


def _uring_simple(ring, loop, opcode, fd, off=0, op_flags=0):
    fut = loop.create_future()
    user_data = ring._start(
        _prep, (opcode, fd, ffi.NULL, 0, off, op_flags), _done_into(fut, lambda res: None), None
    )
    return _await(ring, fut, user_data)


class _UringFile(AsyncFile):
    backend = "io_uring"

    def __init__(self, loop, ring, *args):
        super().__init__(loop, *args)
        self._ring = ring

    async def _pread(self, size, offset):
        if self._loop is not _get_running_loop():
            _check_loop(self._loop)
        buf = _new_buffer("char[]", size or 1)
        fut = self._loop.create_future()
        ring = self._ring
        user_data = ring._start(
            _prep, (_OP_READ, self._fd, buf, size, offset, 0), self._read_done(fut, buf), buf
        )
        try:  # _await(), inline: one coroutine frame less per read
            return await fut
        except _CancelledError:
            self._read_cancelled(ring, fut, user_data, buf)
            raise

    def _read_done(self, fut, buf):
        """_done_into() for a read: what comes after its awaiter was
        cancelled (the future is, at once; the task runs its except
        clause later) is kept [F2]."""

        def done(res, flags):
            if fut.done():
                if res > 0:
                    self._keep(ffi.unpack(buf, res))
            elif res >= 0:
                fut.set_result(ffi.unpack(buf, res))
            else:
                fut.set_exception(_oserror(-res))

        return done

    def _read_cancelled(self, ring, fut, user_data, buf):
        """[F2] what a read whose awaiter was cancelled took is kept."""
        if fut.done() and not fut.cancelled():  # it came; the task was cancelled after
            if fut.exception() is None:
                self._keep(fut.result())
            return
        if user_data not in ring._ops:  # done (_read_done kept it), or never submitted
            _abandon(ring, fut, user_data)
            return
        settling = self._settling = self._loop.create_future()
        _abandon(
            ring,
            fut,
            user_data,
            lambda res, flags: self._settled(settling, ffi.unpack(buf, res) if res > 0 else b""),
        )

    async def _pwrite(self, data, offset):
        if self._loop is not _get_running_loop():
            _check_loop(self._loop)
        view, length = _readable_buffer(data)
        fut = self._loop.create_future()
        ring = self._ring
        user_data = ring._start(
            _prep, (_OP_WRITE, self._fd, view, length, offset, 0), _done_into(fut, int), view
        )
        del view  # the ring's record holds it; a frame kept by a traceback must not
        try:  # _await(), inline
            return await fut
        except _CancelledError:
            _abandon(ring, fut, user_data)
            raise

    async def _stat(self):
        _check_loop(self._loop)
        return await _uring_statx(self._ring, self._loop, self._fd)

    async def _fsync(self, datasync):
        _check_loop(self._loop)
        await _uring_simple(
            self._ring,
            self._loop,
            _OP_FSYNC,
            self._fd,
            op_flags=lib.IORING_FSYNC_DATASYNC if datasync else 0,
        )

    async def _truncate(self, size):
        _check_loop(self._loop)
        if "FTRUNCATE" in self._ring.supported_ops:  # Linux 6.9
            await _uring_simple(self._ring, self._loop, _OP_FTRUNCATE, self._fd, off=size)
        else:
            await self._loop.run_in_executor(None, os.ftruncate, self._fd, size)

    async def _close(self):
        _check_loop(self._loop)
        ring = self._ring
        if ring.in_flight():
            # [F5] in the kernel: cancel by fd; not yet in it: cancel by user_data.
            for user_data, (_prep_fn, args, _entry) in list(ring._backlog.items()):
                if len(args) > 1 and args[1] == self._fd:
                    ring._cancel(user_data)
            ring._start(lib.reactor_ring_prep_cancel_fd, (self._fd,), _cancel_fd_done, None)
        await _uring_simple(ring, self._loop, _OP_CLOSE, self._fd)


def _cancel_fd_done(res, flags):
    pass  # 0, the number cancelled, or -ENOENT: the operations' own CQEs tell the rest


async def open_uring_file(loop, path, mode, flags, closefd):
    """open_file()'s io_uring half: an _UringFile on `loop`'s ring [F4, F6]."""
    ring = _loop_ring(loop)
    if isinstance(path, int):
        fd = path
    else:
        cpath = _path(path)
        fd = await _uring_open(ring, loop, cpath, flags, 0o666)
        if flags & os.O_ACCMODE == os.O_RDONLY and _is_fifo(fd):
            fd = await _wait_for_a_writer(ring, loop, cpath, flags, fd)
    return _UringFile(loop, ring, fd, path, mode, flags, closefd)


def _open_again(loop, path, mode):
    """open_file(path, mode, backend="io_uring"), from inside this backend."""
    return open_uring_file(loop, path, mode, _open_flags(mode), True)


class _Trip:
    """The results of the SQEs of one trip through the loop, and a future
    the last of them resolves (a chain's last CQE is its last step's)."""

    __slots__ = ("results", "done")

    def __init__(self, loop, count):
        self.results = [0] * count
        self.done = loop.create_future()

    def step(self, index):
        results, done = self.results, self.done
        last = index == len(results) - 1

        def complete(res, flags):
            results[index] = res
            if last and not done.done():
                done.set_result(None)

        return complete


def uring_read_bytes(path: Any, cpath: Any) -> Coroutine[Any, Any, bytes]:
    """read_bytes() on io_uring [F7]: the coroutine to await.  The one-trip
    chain starts here, before it is awaited, so that read_bytes() awaits
    the coroutine that finishes it directly (a frame less per call)."""
    loop = asyncio.get_running_loop()
    ring = _loop_ring(loop)
    slots = ring._free_slots()
    if slots:
        started = _start_one_trip(ring, loop, cpath, slots)
        if started is not None:
            return _finish_one_trip(ring, loop, cpath, path, *started)
    return _read_bytes_in_two_trips(ring, loop, cpath, path)


async def _read_bytes_in_two_trips(ring, loop, cpath, path):
    """read_bytes() without a slot [F7]: the open, then two reads."""
    opened = loop.create_future()
    user_data = ring._start(
        _prep,
        (_OP_OPENAT, lib.AT_FDCWD, cpath, 0, 0, os.O_RDONLY | os.O_CLOEXEC),
        _done_into(opened, int, _close_on_success),
        cpath,
    )
    try:
        fd = await opened
    except _CancelledError:
        _opening_cancelled(ring, opened, user_data)
        raise
    # Buffers from a small pool: a fresh 64 KiB costs more (malloc, and the
    # page faults as the kernel first writes to it) than the read itself.
    first, second = (
        _read_buffers.pop()
        if _read_buffers
        else (_new_buffer("char[]", _FIRST_READ), _new_buffer("char[]", _SECOND_READ))
    )
    trip = _Trip(loop, 2)
    chain = ring._start_chain(
        (
            (
                _prep_ext,
                (_OP_READ, fd, first, _FIRST_READ, -1, 0, ffi.NULL, 0, lib.IOSQE_IO_HARDLINK, 0),
                trip.step(0),
                first,
            ),
            (_prep, (_OP_READ, fd, second, _SECOND_READ, -1, 0), trip.step(1), second),
        )
    )
    if chain is None:  # no room for a chain now: one read at a time
        async with _UringFile(loop, ring, fd, path, "rb", os.O_RDONLY, True) as f:
            return await f.read()
    try:
        await trip.done
    except _CancelledError:
        # (The buffers stay with the reads' records until the kernel is done
        # [U6]: not back to the pool.  The reads hold the file: safe to close.)
        _close_later(ring, fd)
        raise
    n, more = trip.results
    data = ffi.unpack(first, n) if n > 0 else b""
    extra = ffi.unpack(second, more) if more > 0 else b""
    if len(_read_buffers) < _READ_BUFFERS_KEPT:
        _read_buffers.append((first, second))
    if n < 0 or more < 0:
        _close_later(ring, fd)
        raise _oserror(-(n if n < 0 else more))
    if more == 0 and (n > 0 or not _is_fifo(fd)):  # the end: a read that returns nothing
        _close_later(ring, fd)
        return data
    if more == 0:  # [F6] a FIFO without a writer: wait for one, as open(2) does
        fd = await _wait_for_a_writer(ring, loop, cpath, os.O_RDONLY | os.O_CLOEXEC, fd)
        async with _UringFile(loop, ring, fd, path, "rb", os.O_RDONLY, True) as f:
            return await f.read()
    # More than fits: on from where the two reads left off.
    f = _UringFile(loop, ring, fd, path, "rb", os.O_RDONLY, True)
    f._pos = n + more
    async with f:
        rest = await f.read()
    return data + extra + rest


def _start_one_trip(ring, loop, cpath, slots):
    """read_bytes() as one linked chain [F7, U16]: open into a direct
    descriptor slot, read 64 KiB, read 4 KiB, close the slot.  Its (trip,
    first buffer, second buffer), or None when the SQ has no room for the
    chain now."""
    slot = slots.pop()
    first, second = (
        _read_buffers.pop()
        if _read_buffers
        else (_new_buffer("char[]", _FIRST_READ), _new_buffer("char[]", _SECOND_READ))
    )
    trip = _Trip(loop, 4)
    last = trip.step(3)

    def closed(res, flags):
        slots.append(slot)  # free only now [U16]
        last(res, flags)

    fixed, link, hard = lib.IOSQE_FIXED_FILE, lib.IOSQE_IO_LINK, lib.IOSQE_IO_HARDLINK
    index = slot + 1
    chain = ring._start_chain(
        (
            (
                _prep_slot,
                (_OP_OPENAT, lib.AT_FDCWD, cpath, 0, os.O_RDONLY, link, index),
                trip.step(0),
                cpath,
            ),
            (
                _prep_ext,
                (_OP_READ, slot, first, _FIRST_READ, -1, 0, ffi.NULL, 0, fixed | hard, 0),
                trip.step(1),
                first,
            ),
            (
                _prep_ext,
                (_OP_READ, slot, second, _SECOND_READ, -1, 0, ffi.NULL, 0, fixed | hard, 0),
                trip.step(2),
                second,
            ),
            (_prep_slot, (_OP_CLOSE, 0, ffi.NULL, 0, 0, 0, index), closed, None),
        )
    )
    if chain is None:
        slots.append(slot)
        return None
    return trip, first, second


async def _finish_one_trip(ring, loop, cpath, path, trip, first, second):
    """The rest of read_bytes() once its chain started [F7]."""
    await trip.done  # (cancelled: the chain goes on in the kernel, and frees the slot)
    opened, n, more, _closed = trip.results
    data = ffi.unpack(first, n) if n > 0 else b""
    extra = ffi.unpack(second, more) if more > 0 else b""
    if len(_read_buffers) < _READ_BUFFERS_KEPT:
        _read_buffers.append((first, second))
    for res in (opened, n, more):  # (the close of a read-only file loses nothing)
        if res < 0:
            raise _oserror(-res)
    if n == 0 and await _names_a_fifo(ring, loop, cpath):
        # [F6] opened without a writer, so the reads found none: open it
        # again, waiting for one as open(2) does.
        async with await _open_again(loop, path, "rb") as f:
            return await f.read()
    if more == 0:  # the end, for certain: a read that returns nothing
        return data
    # More than fits, and the slot is closed: on from there, the long way.
    async with await _open_again(loop, path, "rb") as f:
        await f.seek(n + more)
        return data + extra + await f.read()


async def uring_write_bytes(path: Any, cpath: Any, data: Any, view: Any, length: int) -> int:
    """write_bytes() on io_uring [F7]: `view` is `data`'s, `length` its size."""
    loop = asyncio.get_running_loop()
    ring = _loop_ring(loop)
    fd = await _uring_open(
        ring, loop, cpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666
    )
    trip = _Trip(loop, 2)
    chain = ring._start_chain(
        (
            (
                _prep_ext,
                (_OP_WRITE, fd, view, length, 0, 0, ffi.NULL, 0, lib.IOSQE_IO_HARDLINK, 0),
                trip.step(0),
                view,
            ),
            (_prep, (_OP_CLOSE, fd, ffi.NULL, 0, 0, 0), trip.step(1), None),
        )
    )
    del view  # the ring's records hold it [U6]
    if chain is None:
        async with _UringFile(loop, ring, fd, path, "wb", os.O_WRONLY, True) as f:
            return await f.write(data)
    await trip.done  # (cancelled: the chain goes on in the kernel, closing the fd)
    n, closed = trip.results
    for res in (n, closed):
        if res < 0:
            raise _oserror(-res)
    if n < length:  # a short write (the file size limit, a full disk): the rest, at its offset
        async with await _open_again(loop, path, "r+b") as f:
            await f.seek(n)
            await f.write(memoryview(data).cast("B")[n:])
    return length


def _close_later(ring, fd):
    """Close an fd nobody will use, without waiting for it."""
    if not ring.closed:
        ring._start(_prep, (_OP_CLOSE, fd, ffi.NULL, 0, 0, 0), _ignore_close, None)
    else:
        os.close(fd)


def _ignore_close(res, flags):
    pass  # an fd nobody used: its close cannot lose data
