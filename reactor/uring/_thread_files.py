"""The thread backend of open_file(), read_bytes() and write_bytes(), where
io_uring is refused [U11]: each call runs in the loop's default executor,
as aiofiles does.  A thread cannot be interrupted: cancelling keeps what a
running call did [F2], and close() waits for running calls [F5].
"""

from __future__ import annotations

import asyncio
import os
import threading

from .._native import ffi
from ._asyncfile import _ESPIPE, AsyncFile, _CancelledError, _check_loop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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


async def open_thread_file(loop, path, mode, flags, closefd):
    """open_file()'s thread half: os.open in the executor [F2]."""
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


def _sync_read_bytes(cpath):
    with open(ffi.string(cpath), "rb") as f:
        return f.read()


def _sync_write_bytes(cpath, data):
    with open(ffi.string(cpath), "wb") as f:
        return f.write(data)
