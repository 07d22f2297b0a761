"""AsyncFile: the file object open_file() gives, over a backend.

The methods (read, write, pread, pwrite, seek, stat, fsync, truncate,
close) are the same on both backends and keep the facts of _files.py
([F1] position, [F2] cancellation, [F3] short transfers, [F5] close);
a backend (_uring_files.py, _thread_files.py) supplies the six
primitives at the end of the class: _pread, _pwrite, _stat, _fsync,
_truncate, _close.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import stat
from asyncio.events import _get_running_loop

from .._native import ffi
from ._ops import _INT_MAX, _readable_buffer, _size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["AsyncFile"]

_ESPIPE = errno.ESPIPE
_SEEK_DATA_HOLE = tuple(
    getattr(os, name) for name in ("SEEK_DATA", "SEEK_HOLE") if hasattr(os, name)
)
_CancelledError = asyncio.CancelledError
# Most one read may ask for: the kernel's MAX_RW_COUNT (INT_MAX rounded
# down to a page) would do; 1 GiB keeps read(-1) of a huge file in steps.
_MAX_CHUNK = 1 << 30
_STREAM_CHUNK = 64 * 1024


def _open_flags(mode):
    """os.open flags for a binary mode, by io.open's rules; ValueError else."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    modes = set(mode)
    if modes - set("rwxab+") or len(mode) > len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    if "b" not in modes:
        raise ValueError(
            f"open_file supports binary modes only ('rb', 'wb', 'r+b' ...), not {mode!r}"
        )
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
        self._unread = b""  # [F2] bytes cancelled reads took from a stream
        self._settling = None  # [F2] a future: a cancelled read the kernel still runs

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
                    chunk = whole[done : done + _MAX_CHUNK]
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
                chunk = await self._pread(
                    min(want or _STREAM_CHUNK, _MAX_CHUNK), -1 if self._stream else offset
                )
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
