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

Facts this module relies on (the kernel's [U*] are in docs/io_uring.md):

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
import os

from .._native import ffi
from ._asyncfile import _MAX_CHUNK, AsyncFile, _open_flags
from ._ops import _INT_MAX, _path, _readable_buffer
from ._probe import uring_available
from ._thread_files import _sync_read_bytes, _sync_write_bytes, open_thread_file
from ._uring_files import open_uring_file, uring_read_bytes, uring_write_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Generator, Optional, Union

    PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__all__ = ["open_file", "read_bytes", "write_bytes", "AsyncFile"]

BACKENDS = ("io_uring", "thread")


def _backend(backend):
    if backend is None:
        return "io_uring" if uring_available() else "thread"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, not {backend!r}")
    if backend == "io_uring" and not uring_available():
        raise OSError(
            uring_available().errno or errno.ENOSYS,
            f"io_uring is not available: {uring_available().reason}",
        )
    return backend


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


def open_file(
    path: Union[PathLike, int],
    mode: str = "rb",
    *,
    closefd: bool = True,
    backend: Optional[str] = None,
) -> _Opening:
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


def _open(path, mode, flags, closefd, backend):
    """The backend's open coroutine (itself, not one awaiting it: a frame less)."""
    loop = asyncio.get_running_loop()
    if backend == "io_uring":
        return open_uring_file(loop, path, mode, flags, closefd)
    return open_thread_file(loop, path, mode, flags, closefd)


async def read_bytes(path: PathLike, *, backend: Optional[str] = None) -> bytes:
    """The whole file, as pathlib.Path(path).read_bytes() [F7]."""
    cpath = _path(path)  # a path, not an fd: TypeError for an int, as pathlib's
    if _backend(backend) == "thread":
        return await asyncio.get_running_loop().run_in_executor(None, _sync_read_bytes, cpath)
    return await uring_read_bytes(path, cpath)


async def write_bytes(path: PathLike, data: Any, *, backend: Optional[str] = None) -> int:
    """Create or truncate the file and write `data`, as
    pathlib.Path(path).write_bytes(); returns len(data) [F7]."""
    cpath = _path(path)  # a path, not an fd: TypeError for an int, as pathlib's
    view, length = _readable_buffer(data)
    if _backend(backend) == "thread" or length > _MAX_CHUNK:
        ffi.release(view)
        if backend == "thread" or (backend is None and not uring_available()):
            return await asyncio.get_running_loop().run_in_executor(
                None, _sync_write_bytes, cpath, data
            )
        async with open_file(path, "wb", backend="io_uring") as f:
            return await f.write(data)
    return await uring_write_bytes(path, cpath, data, view, length)
