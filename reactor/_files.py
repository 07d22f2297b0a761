"""Files for asyncio on io_uring: open_file(), read_bytes(), write_bytes().

``open_file(path, mode="rb")`` gives a file object of aiofiles' shape::

    async with reactor.open_file("data.bin", "r+b") as f:
        header = await f.read(16)
        await f.seek(0, os.SEEK_END)
        await f.write(b"tail")
        block = await f.pread(4096, 1 << 20)
        await f.fsync()

with no threads: every call is one io_uring operation (or a few) on the
running loop's ring, whose eventfd the loop watches with ``add_reader``;
it works on asyncio's own loops, reactor's (``reactor.new_event_loop()``)
and uvloop.  Where io_uring is refused (``reactor.uring_available()`` is
false) the same API runs each call in the loop's default thread pool, as
aiofiles does, and ``f.backend`` says ``"thread"`` instead of
``"io_uring"``.  Binary modes only.

Facts this module relies on (see also reactor/_ring.py's [U*]):

[F1] Position.  A file object keeps its own position, as io's buffered
     files do; read() and write() are pread/pwrite at it and move it by
     what they transferred, one at a time (a per-file asyncio.Lock, so two
     tasks reading the same file get consecutive pieces).  pread() and
     pwrite() take their own offsets and neither use nor move it.
     Append mode writes where the kernel's position is (offset -1: the
     file's end, O_APPEND) and then reads it back with lseek, which does no
     IO.  A file that cannot seek (a pipe, a FIFO, a socket) is read and
     written as a stream: io_uring ignores offsets there [U14]; the thread
     backend switches to read()/write() at its first ESPIPE; seek() says
     ESPIPE on both.
[F2] Cancellation.  When the awaiting task is cancelled the kernel
     operation is cancelled too [U7], its buffer kept until the kernel lets
     go [U6]; the position does not move, whatever the kernel managed to do.
     A cancelled read may have read.  From a file that seeks, the next read
     reads it again.  From a stream (a FIFO, a pipe, a socket) the kernel
     consumed it: the file keeps those bytes, and its next read() returns
     them first, after waiting for a cancelled read the kernel (or a worker
     thread, which cannot be interrupted) is still running, so the order
     holds.  (A cancelled pread() of a stream keeps them too, for the next
     read(); pread() itself never returns kept bytes.)  A cancelled write
     may have written.  An open whose awaiter was
     cancelled closes the fd it may still produce, whichever comes first:
     the cancellation or the result (the flush may reap it before the
     cancelled task runs again).  The thread backend's open does the same
     under a lock with the worker thread.
[F3] Short transfers.  read(-1) asks statx for the size, reads that much,
     then reads on until a read returns b"", as io.FileIO.readall does: a
     short read is not taken for the end (/proc files say size 0; a file
     may grow).  A write is repeated for what a short write left.
[F4] One ring per event loop, made on first use; it lives as long as the
     loop object (released when the loop is collected, or at exit: a loop
     kept referenced after close() keeps its ring's two fds until then;
     asyncio has no hook for a loop's close), and is never shared with a
     forked child [U9]: the child gets its own.  Setting up a ring and
     tearing it down costs ~60 us, the price of a few dozen reads: one per
     burst of file IO would cost more than it saves.
[F5] close() with operations in flight: they are cancelled
     (IORING_ASYNC_CANCEL_FD, 5.19) and their awaiters get the
     OSError(ECANCELED) the kernel gives (or their real result if they
     finished first); then the fd is closed.  The thread backend waits for
     its running calls instead (a thread cannot be interrupted).
[F6] FIFOs.  io_uring's openat first tries the open with O_NONBLOCK (and
     clears that flag on the file afterwards): a FIFO opened for reading
     opens at once without a writer, and its first read is EOF, where
     open(2), Python's open() and the thread backend wait for a writer.
     So open_file() asks fstat (no IO) whether what it opened read-only is
     a FIFO, and opens it again in an io-wq worker (IOSQE_ASYNC: no
     O_NONBLOCK try), which waits for a writer as open(2) does; read_bytes()
     asks statx about a file that read empty, and does the same for a FIFO.
     Opened for writing the wait is the kernel's already: open_file's write
     modes carry O_CREAT, which skips the O_NONBLOCK try.
[F7] read_bytes() takes one trip through the loop: one linked chain [U15]
     opens the file into a direct-descriptor slot [U16], reads 64 KiB and
     then 4 KiB at the file's position (offset -1), and closes the slot.  A
     second read that returns nothing proves the end for any kind of file,
     with no belief about short reads; a file that is not over by then is
     opened again and read on from there (a FIFO's data read by the chain is
     kept; what a writer sends after the close is not read; a FIFO without
     a writer: [F6]).  Without slots
     (before 5.19, or all 128 in use) it takes two trips: the open, then the
     same two reads, the close not awaited (a read-only fd's close loses
     nothing).  No statx: IORING_OP_STATX always runs in an io-wq worker
     thread, a kernel thread hop for every file.  write_bytes() takes two:
     the open, then a chain of the write and the close.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import stat
import threading
import weakref
from asyncio.events import _get_running_loop

from ._native import ffi, lib
from ._ring import _INT_MAX, Ring, StatxResult, _new_buffer, _oserror, _path, \
    _readable_buffer, _size, uring_available

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Generator, Optional, Union

    PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__all__ = ["open_file", "read_bytes", "write_bytes", "AsyncFile"]

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
_ESPIPE = errno.ESPIPE
_SEEK_DATA_HOLE = tuple(getattr(os, name) for name in ("SEEK_DATA", "SEEK_HOLE")
                        if hasattr(os, name))
_CancelledError = asyncio.CancelledError
# Most one read may ask for: the kernel's MAX_RW_COUNT (INT_MAX rounded
# down to a page) would do; 1 GiB keeps read(-1) of a huge file in steps.
_MAX_CHUNK = 1 << 30
_STREAM_CHUNK = 64 * 1024
# read_bytes(): what its first read asks for, and the read after it that
# must find the end [F7].
_FIRST_READ = 64 * 1024
_SECOND_READ = 4096
# Buffer pairs for those reads, back from reads the kernel finished.
_read_buffers: list = []
_READ_BUFFERS_KEPT = 64
BACKENDS = ("io_uring", "thread")

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


def _backend(backend):
    if backend is None:
        return "io_uring" if uring_available() else "thread"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, not {backend!r}")
    if backend == "io_uring" and not uring_available():
        raise OSError(uring_available().errno or errno.ENOSYS,
                      f"io_uring is not available: {uring_available().reason}")
    return backend


def _open_flags(mode):
    """os.open flags for a binary mode, by io.open's rules; ValueError else."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    modes = set(mode)
    if modes - set("rwxab+") or len(mode) > len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    if "b" not in modes:
        raise ValueError(f"open_file supports binary modes only ('rb', 'wb', 'r+b' ...), "
                         f"not {mode!r}")
    if sum(c in modes for c in "rwxa") != 1:
        raise ValueError("must have exactly one of read/write/create/append mode")
    plus = "+" in modes
    if "r" in modes:
        flags = os.O_RDWR if plus else os.O_RDONLY
    else:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT
        if "w" in modes:
            flags |= os.O_TRUNC
        elif "x" in modes:
            flags |= os.O_EXCL
        else:
            flags |= os.O_APPEND
    return flags | os.O_CLOEXEC


def _check_loop(loop):
    if _get_running_loop() is not loop:
        raise RuntimeError("this file belongs to another event loop (or none is running)")


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
    user_data = ring._start(_prep, (_OP_OPENAT, lib.AT_FDCWD, cpath, mode, 0, flags),
                            _done_into(fut, int, _close_on_success), cpath)
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
        user_data = ring._start(_prep_ext, (_OP_OPENAT, lib.AT_FDCWD, cpath, 0o666, 0, flags,
                                            ffi.NULL, 0, lib.IOSQE_ASYNC, 0),
                                _done_into(fut, int, _close_on_success), cpath)
        return await _await(ring, fut, user_data, _close_on_success)
    finally:
        os.close(fd)


def _uring_statx(ring, loop, fd):
    stx = ffi.new("struct statx *")
    empty = ffi.new("char[]", b"")
    fut = loop.create_future()
    user_data = ring._start(_prep_ext, (_OP_STATX, fd, empty, _STATX_MASK, 0,
                                        lib.AT_EMPTY_PATH, stx, 0, 0, 0),
                            _done_into(fut, lambda res: StatxResult(stx)), (empty, stx))
    return _await(ring, fut, user_data)


async def _names_a_fifo(ring, loop, cpath):
    """Whether the path is a FIFO (a statx: asked only of files that read
    empty)."""
    stx = ffi.new("struct statx *")
    fut = loop.create_future()
    user_data = ring._start(_prep_ext, (_OP_STATX, lib.AT_FDCWD, cpath, _STATX_MASK, 0, 0,
                                        stx, 0, 0, 0),
                            _done_into(fut, lambda res: stat.S_ISFIFO(stx.stx_mode)),
                            (cpath, stx))
    try:
        return await _await(ring, fut, user_data)
    except OSError:
        return False  # gone or changed since: what was read stands


def _uring_simple(ring, loop, opcode, fd, off=0, op_flags=0):
    fut = loop.create_future()
    user_data = ring._start(_prep, (opcode, fd, ffi.NULL, 0, off, op_flags),
                            _done_into(fut, lambda res: None), None)
    return _await(ring, fut, user_data)


class AsyncFile:
    """A file opened by open_file(): aiofiles' methods, as coroutines.

    ``backend`` is ``"io_uring"`` or ``"thread"`` (the fallback where
    io_uring is refused).  Errors: OSError from the kernel, ValueError once
    closed or for a value out of range, TypeError for a wrong type.
    """

    backend = ""

    def __init__(self, loop, fd: int, name: Any, mode: str, flags: int, closefd: bool) -> None:
        self._loop = loop
        self._fd = fd
        self.name = name
        self.mode = mode
        self._append = bool(flags & os.O_APPEND)
        self._readable = (flags & os.O_ACCMODE) != os.O_WRONLY
        self._writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        self._closefd = closefd
        self._stream = False  # [F1] ESPIPE seen: no offsets
        self._pos = 0
        if self._append or not closefd or isinstance(name, int):
            # Where the kernel's position is: the end (append), or wherever
            # the fd we were given was.
            try:
                self._pos = os.lseek(fd, 0, os.SEEK_END if self._append else os.SEEK_CUR)
            except OSError as exc:
                if exc.errno != _ESPIPE:
                    raise
                self._stream = True
        self._lock = asyncio.Lock()
        self._closed = False
        self._unread = b""      # [F2] bytes cancelled reads took from a stream
        self._settling = None   # [F2] a future: a cancelled read the kernel still runs

    # -- plain attributes, as aiofiles delegates them ------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def __repr__(self):
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {self.name!r} mode={self.mode!r} {state}>"

    def _check_open(self):
        if self._closed:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self):
        self._check_open()
        if not self._readable:  # io's error: an OSError and a ValueError
            raise io.UnsupportedOperation("File not open for reading")

    def _check_writable(self):
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")

    # -- positional IO [F1] ----------------------------------------------------------

    async def read(self, size: Optional[int] = -1) -> bytes:
        """Read up to `size` bytes at the position (all up to EOF when
        size is None or negative) and move past them."""
        if size is None:
            size = -1
        if not isinstance(size, int):
            raise TypeError(f"size must be an int or None, not {type(size).__name__}")
        self._check_readable()
        async with self._lock:
            if self._settling is not None:  # [F2] its bytes come first
                await asyncio.shield(self._settling)
            if self._unread:
                return await self._read_kept(size)
            if size < 0:
                data = await self._readall(self._pos)
            else:
                data = await self._pread(min(size, _INT_MAX), self._offset())
            if not self._stream:
                self._pos += len(data)
            return data

    async def _read_kept(self, size):
        """A read served from what cancelled reads took from a stream [F2]:
        at most `size` of it (a short read, as a stream's may be), or all
        of it and the rest of the stream."""
        kept, self._unread = self._unread, b""
        if 0 <= size < len(kept):
            self._unread = kept[size:]
            return kept[:size]
        if size >= 0:
            return kept
        try:
            return kept + await self._readall(-1)
        except _CancelledError:
            self._unread = kept + self._unread
            raise

    def _keep(self, data, *, first=False):
        """[F2] bytes a read whose awaiter was cancelled took: from a stream
        they are gone from the kernel, so the next read returns them (from
        a file that seeks the position did not move: they are read again)."""
        if not data or self._closed:
            return
        if not self._stream:
            try:
                os.lseek(self._fd, 0, os.SEEK_CUR)  # no IO: can it seek at all?
                return
            except OSError as exc:
                if exc.errno != _ESPIPE:
                    raise
                self._stream = True
        self._unread = data + self._unread if first else self._unread + data

    def _settled(self, settling, data):
        """A cancelled read the kernel (or a worker thread) still ran is over."""
        self._keep(data)
        if self._settling is settling:
            self._settling = None
        if not settling.done():
            settling.set_result(None)

    async def write(self, data: Any) -> int:
        """Write all of `data` at the position (at the end in append mode)
        and move past it; returns len(data)."""
        view, length = _readable_buffer(data)
        ffi.release(view)  # only the length: no export kept in this frame [U6]
        self._check_writable()
        async with self._lock:
            done = 0
            whole = None
            while done < length:
                if done == 0 and length <= _MAX_CHUNK:
                    chunk = data
                else:
                    if whole is None:
                        whole = memoryview(data).cast("B")
                    chunk = whole[done:done + _MAX_CHUNK]
                offset = -1 if self._append or self._stream else self._pos + done
                n = await self._pwrite(chunk, offset)
                if n == 0:
                    raise OSError(errno.EIO, "write() wrote nothing")
                done += n
            if self._append and done:  # (an empty write does not move, as write(2))
                self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
            elif not self._stream:
                self._pos += done
            return done

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position; returns the new one (SEEK_END asks statx)."""
        if not isinstance(offset, int) or not isinstance(whence, int):
            raise TypeError("offset and whence must be ints")
        self._check_open()
        async with self._lock:
            if whence == os.SEEK_SET:
                base = 0
            elif whence == os.SEEK_CUR:
                base = self._pos
            elif whence == os.SEEK_END:
                base = (await self._stat()).st_size
            elif whence in _SEEK_DATA_HOLE:
                # Asks the filesystem, no data IO: as FileIO, straight to lseek.
                self._pos = os.lseek(self._fd, offset, whence)
                return self._pos
            else:  # lseek's answer, as FileIO gives
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            if not self._stream:
                try:
                    os.lseek(self._fd, 0, os.SEEK_CUR)  # no IO: can it seek at all?
                except OSError as exc:
                    if exc.errno != _ESPIPE:
                        raise
                    self._stream = True
            if self._stream:
                raise OSError(_ESPIPE, os.strerror(_ESPIPE))
            position = base + offset
            if position < 0:
                raise OSError(errno.EINVAL, f"negative seek position {position}")
            if position > 2**63 - 1:
                raise OverflowError("seek position past 2**63 - 1")
            self._pos = position
            return position

    async def tell(self) -> int:
        self._check_open()
        async with self._lock:
            return self._pos

    def _offset(self):
        return -1 if self._stream else self._pos

    async def _readall(self, offset):
        """From offset to EOF [F3]: the size statx gives, then on until b""."""
        st = await self._stat()
        want = max(st.st_size - max(offset, 0), 0) if stat.S_ISREG(st.st_mode) else 0
        chunks = []
        try:
            while True:
                chunk = await self._pread(min(want or _STREAM_CHUNK, _MAX_CHUNK),
                                          -1 if self._stream else offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                want = max(want - len(chunk), 0)
        except _CancelledError:
            self._keep(b"".join(chunks), first=True)  # [F2] before what the last read took
            raise
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def pread(self, size: int, offset: int) -> bytes:
        """os.pread(fd, size, offset); the position is neither used nor moved."""
        size = _size(size)
        if not isinstance(offset, int):
            raise TypeError(f"offset must be an int, not {type(offset).__name__}")
        if not 0 <= offset <= 2**63 - 1:
            raise ValueError(f"offset must be in 0 ... 2**63 - 1, not {offset}")
        self._check_readable()
        return await self._pread(size, offset)

    async def pwrite(self, data: Any, offset: int) -> int:
        """os.pwrite(fd, data, offset): the number of bytes written."""
        ffi.release(_readable_buffer(data)[0])  # a TypeError now, for what is no buffer
        if not isinstance(offset, int):
            raise TypeError(f"offset must be an int, not {type(offset).__name__}")
        if not 0 <= offset <= 2**63 - 1:
            raise ValueError(f"offset must be in 0 ... 2**63 - 1, not {offset}")
        self._check_writable()
        return await self._pwrite(data, offset)

    async def fsync(self) -> None:
        self._check_open()
        await self._fsync(False)

    async def fdatasync(self) -> None:
        self._check_open()
        await self._fsync(True)

    async def flush(self) -> None:
        """Nothing to do: this file object buffers nothing (aiofiles' shape)."""
        self._check_open()

    async def truncate(self, size: Optional[int] = None) -> int:
        """Cut (or extend) the file to `size` bytes (default: the position);
        the position does not move.  Returns size."""
        self._check_writable()
        async with self._lock:
            if size is None:
                size = self._pos
            if not isinstance(size, int):
                raise TypeError(f"size must be an int or None, not {type(size).__name__}")
            if not 0 <= size <= 2**63 - 1:
                raise ValueError(f"size must be in 0 ... 2**63 - 1, not {size}")
            await self._truncate(size)
            return size

    async def stat(self) -> Any:
        """os.fstat() of the file (a StatxResult on io_uring)."""
        self._check_open()
        return await self._stat()

    async def close(self) -> None:
        """Close the file; operations in flight are cancelled [F5].  A
        second close() does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._closefd:
            await self._close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.close()

    def __del__(self, _warn=__import__("warnings").warn):
        if getattr(self, "_closed", True) or not getattr(self, "_closefd", False):
            return
        self._closed = True
        os.close(self._fd)
        _warn(f"unclosed file {self!r}", ResourceWarning, source=self)

    # -- per backend ----------------------------------------------------------------

    async def _pread(self, size, offset) -> bytes:
        raise NotImplementedError

    async def _pwrite(self, data, offset) -> int:
        raise NotImplementedError

    async def _stat(self) -> Any:
        raise NotImplementedError

    async def _fsync(self, datasync) -> None:
        raise NotImplementedError

    async def _truncate(self, size) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


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
        user_data = ring._start(_prep, (_OP_READ, self._fd, buf, size, offset, 0),
                                self._read_done(fut, buf), buf)
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
        _abandon(ring, fut, user_data, lambda res, flags: self._settled(
            settling, ffi.unpack(buf, res) if res > 0 else b""))

    async def _pwrite(self, data, offset):
        if self._loop is not _get_running_loop():
            _check_loop(self._loop)
        view, length = _readable_buffer(data)
        fut = self._loop.create_future()
        ring = self._ring
        user_data = ring._start(_prep, (_OP_WRITE, self._fd, view, length, offset, 0),
                                _done_into(fut, int), view)
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
        await _uring_simple(self._ring, self._loop, _OP_FSYNC, self._fd,
                            op_flags=lib.IORING_FSYNC_DATASYNC if datasync else 0)

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


class _ThreadFile(AsyncFile):
    """The fallback [U11]: each call in the loop's default executor."""

    backend = "thread"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._running: set = set()

    def _run(self, func, *args):
        _check_loop(self._loop)
        fut = self._loop.run_in_executor(None, func, *args)
        self._running.add(fut)
        fut.add_done_callback(self._running.discard)
        return fut

    async def _at(self, positioned, streaming, arg, offset):
        """positioned(fd, arg, offset) in a thread; streaming(fd, arg) for
        offset -1 or a file without positions (ESPIPE) [F1]."""
        if offset == -1:
            return await self._run(streaming, self._fd, arg)
        try:
            return await self._run(positioned, self._fd, arg, offset)
        except OSError as exc:
            if exc.errno != _ESPIPE:
                raise
            self._stream = True  # [F1]
            return await self._run(streaming, self._fd, arg)

    async def _pread(self, size, offset):
        if offset != -1 and not self._stream:
            try:
                return await self._run(os.pread, self._fd, size, offset)
            except OSError as exc:
                if exc.errno != _ESPIPE:
                    raise
                self._stream = True  # [F1]
        reader = _ReadInThread(self)
        try:
            return await self._run(reader, self._fd, size)
        except _CancelledError:
            reader.abandon()
            raise

    def _pwrite(self, data, offset):
        return self._at(os.pwrite, os.write, data, offset)

    async def _stat(self):
        return await self._run(os.fstat, self._fd)

    async def _fsync(self, datasync):
        await self._run(os.fdatasync if datasync else os.fsync, self._fd)

    async def _truncate(self, size):
        await self._run(os.ftruncate, self._fd, size)

    async def _close(self):
        _check_loop(self._loop)
        if self._running:  # [F5] a thread cannot be interrupted: wait for it
            await asyncio.wait(list(self._running))
        await self._loop.run_in_executor(None, os.close, self._fd)


class _Opening:
    """What open_file() returns: awaitable, and an async context manager
    that closes the file on the way out (as aiofiles.open).  Nothing starts
    until it is awaited."""

    __slots__ = ("_args", "_file")

    def __init__(self, *args):
        self._args = args
        self._file = None

    def __await__(self) -> Generator[Any, None, AsyncFile]:
        return _open(*self._args).__await__()

    async def __aenter__(self) -> AsyncFile:
        self._file = await _open(*self._args)
        return self._file

    async def __aexit__(self, *exc_info):
        await self._file.close()


def open_file(path: Union[PathLike, int], mode: str = "rb", *, closefd: bool = True,
              backend: Optional[str] = None) -> _Opening:
    """Open a file for asyncio: ``async with open_file(path, "rb") as f``
    or ``f = await open_file(...)``.  Binary modes only ("rb", "wb", "ab",
    "xb", with "+"); an int path wraps that fd (closed by close() unless
    closefd is False).  backend: None (io_uring where available, else the
    thread pool), "io_uring" or "thread"."""
    flags = _open_flags(mode)
    backend = _backend(backend)
    if isinstance(path, int):
        if isinstance(path, bool):
            raise TypeError("path must be a path or an fd, not bool")
        if not 0 <= path <= _INT_MAX:
            raise ValueError(f"invalid file descriptor {path}")
    else:
        os.fsencode(path)  # TypeError now for what is not a path
        if not closefd:
            raise ValueError("Cannot use closefd=False with file name")
    return _Opening(path, mode, flags, closefd, backend)


async def _open(path, mode, flags, closefd, backend):
    loop = asyncio.get_running_loop()
    if backend == "io_uring":
        ring = _loop_ring(loop)
        if isinstance(path, int):
            fd = path
        else:
            cpath = _path(path)
            fd = await _uring_open(ring, loop, cpath, flags, 0o666)
            if flags & os.O_ACCMODE == os.O_RDONLY and _is_fifo(fd):
                fd = await _wait_for_a_writer(ring, loop, cpath, flags, fd)
        return _UringFile(loop, ring, fd, path, mode, flags, closefd)
    if isinstance(path, int):
        fd = path
    else:
        opener = _OpenInThread()
        try:
            fd = await loop.run_in_executor(None, opener, path, flags, 0o666)
        except asyncio.CancelledError:
            opener.abandon()
            raise
    return _ThreadFile(loop, fd, path, mode, flags, closefd)


class _OpenInThread:
    """os.open in a worker thread whose awaiter may be cancelled while it
    runs: the fd then goes to whichever side comes second, which closes it
    [F2]."""

    def __init__(self):
        self._lock = threading.Lock()
        self._abandoned = False
        self._fd = None

    def __call__(self, path, flags, mode):
        fd = os.open(path, flags, mode)
        with self._lock:
            if not self._abandoned:
                self._fd = fd
                return fd
        os.close(fd)
        return -1

    def abandon(self):
        with self._lock:
            self._abandoned = True
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class _ReadInThread:
    """os.read of a stream in a worker thread whose awaiter may be
    cancelled while it runs: what it read then is the file's to keep, and
    the file's next read waits for it [F2]."""

    def __init__(self, file):
        self._file = file
        self._loop = file._loop
        self._lock = threading.Lock()
        self._state = "waiting"  # -> "running" -> "done"; or "abandoned"
        self._data = b""
        self._settling = None

    def __call__(self, fd, size):
        with self._lock:
            if self._state == "abandoned":  # cancelled before it started: read nothing
                return b""
            self._state = "running"
        data = b""
        try:
            data = os.read(fd, size)
        finally:
            with self._lock:
                abandoned = self._state == "abandoned"
                if not abandoned:
                    self._state, self._data = "done", data
            if abandoned:
                try:
                    self._loop.call_soon_threadsafe(self._file._settled, self._settling, data)
                except RuntimeError:
                    pass  # the loop is closed: nobody will read again
        return data

    def abandon(self):
        with self._lock:
            state, self._state = self._state, "abandoned"
            if state == "running":  # still reading: the next read waits for it
                self._settling = self._file._settling = self._loop.create_future()
        if state == "done":  # it read, then the task was cancelled
            self._file._keep(self._data)


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


async def read_bytes(path: PathLike, *, backend: Optional[str] = None) -> bytes:
    """The whole file, as pathlib.Path(path).read_bytes() [F7]."""
    cpath = _path(path)  # a path, not an fd: TypeError for an int, as pathlib's
    if _backend(backend) == "thread":
        return await asyncio.get_running_loop().run_in_executor(None, _sync_read_bytes, cpath)
    loop = asyncio.get_running_loop()
    ring = _loop_ring(loop)
    slots = ring._free_slots()
    if slots:
        data = await _read_bytes_in_one_trip(ring, loop, cpath, path, slots)
        if data is not None:
            return data
    opened = loop.create_future()
    user_data = ring._start(_prep, (_OP_OPENAT, lib.AT_FDCWD, cpath, 0, 0,
                                    os.O_RDONLY | os.O_CLOEXEC),
                            _done_into(opened, int, _close_on_success), cpath)
    try:
        fd = await opened
    except _CancelledError:
        _opening_cancelled(ring, opened, user_data)
        raise
    # Buffers from a small pool: a fresh 64 KiB costs more (malloc, and the
    # page faults as the kernel first writes to it) than the read itself.
    first, second = _read_buffers.pop() if _read_buffers else (
        _new_buffer("char[]", _FIRST_READ), _new_buffer("char[]", _SECOND_READ))
    trip = _Trip(loop, 2)
    chain = ring._start_chain((
        (_prep_ext, (_OP_READ, fd, first, _FIRST_READ, -1, 0, ffi.NULL, 0, lib.IOSQE_IO_HARDLINK,
                     0), trip.step(0), first),
        (_prep, (_OP_READ, fd, second, _SECOND_READ, -1, 0), trip.step(1), second)))
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


async def _read_bytes_in_one_trip(ring, loop, cpath, path, slots):
    """read_bytes() as one linked chain [F7, U16]: open into a direct
    descriptor slot, read 64 KiB, read 4 KiB, close the slot.  None when
    the SQ has no room for the chain now."""
    slot = slots.pop()
    first, second = _read_buffers.pop() if _read_buffers else (
        _new_buffer("char[]", _FIRST_READ), _new_buffer("char[]", _SECOND_READ))
    trip = _Trip(loop, 4)
    last = trip.step(3)

    def closed(res, flags):
        slots.append(slot)  # free only now [U16]
        last(res, flags)

    fixed, link, hard = lib.IOSQE_FIXED_FILE, lib.IOSQE_IO_LINK, lib.IOSQE_IO_HARDLINK
    index = slot + 1
    chain = ring._start_chain((
        (_prep_slot, (_OP_OPENAT, lib.AT_FDCWD, cpath, 0, os.O_RDONLY, link, index),
         trip.step(0), cpath),
        (_prep_ext, (_OP_READ, slot, first, _FIRST_READ, -1, 0, ffi.NULL, 0, fixed | hard, 0),
         trip.step(1), first),
        (_prep_ext, (_OP_READ, slot, second, _SECOND_READ, -1, 0, ffi.NULL, 0, fixed | hard, 0),
         trip.step(2), second),
        (_prep_slot, (_OP_CLOSE, 0, ffi.NULL, 0, 0, 0, index), closed, None)))
    if chain is None:
        slots.append(slot)
        return None
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
        async with open_file(path, "rb", backend="io_uring") as f:
            return await f.read()
    if more == 0:  # the end, for certain: a read that returns nothing
        return data
    # More than fits, and the slot is closed: on from there, the long way.
    async with open_file(path, "rb", backend="io_uring") as f:
        await f.seek(n + more)
        return data + extra + await f.read()


async def write_bytes(path: PathLike, data: Any, *, backend: Optional[str] = None) -> int:
    """Create or truncate the file and write `data`, as
    pathlib.Path(path).write_bytes(); returns len(data) [F7]."""
    cpath = _path(path)  # a path, not an fd: TypeError for an int, as pathlib's
    view, length = _readable_buffer(data)
    if _backend(backend) == "thread" or length > _MAX_CHUNK:
        ffi.release(view)
        if backend == "thread" or (backend is None and not uring_available()):
            return await asyncio.get_running_loop().run_in_executor(None, _sync_write_bytes,
                                                                    cpath, data)
        async with open_file(path, "wb", backend="io_uring") as f:
            return await f.write(data)
    loop = asyncio.get_running_loop()
    ring = _loop_ring(loop)
    fd = await _uring_open(ring, loop, cpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                           | os.O_CLOEXEC, 0o666)
    trip = _Trip(loop, 2)
    chain = ring._start_chain((
        (_prep_ext, (_OP_WRITE, fd, view, length, 0, 0, ffi.NULL, 0, lib.IOSQE_IO_HARDLINK, 0),
         trip.step(0), view),
        (_prep, (_OP_CLOSE, fd, ffi.NULL, 0, 0, 0), trip.step(1), None)))
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
        async with open_file(path, "r+b", backend="io_uring") as f:
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


def _sync_read_bytes(cpath):
    with open(ffi.string(cpath), "rb") as f:
        return f.read()


def _sync_write_bytes(cpath, data):
    with open(ffi.string(cpath), "wb") as f:
        return f.write(data)
