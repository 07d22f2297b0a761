"""What a Ring's operations take and give: the argument checks, the
``Operation`` each returns, ``StatxResult``, and the operations themselves
(``_Operations``, the half of ``Ring`` that turns Python arguments into
SQEs; ``Ring`` in _ring.py adds the submitting, reaping and closing).
Long because it is the list of io_uring's operations reactor offers, one
short method each with its checks; splitting the list would hide its shape.

Contract: every argument is checked before anything reaches the kernel --
TypeError for a wrong type, ValueError for a value out of range -- and an
operation's memory (buffers, paths, timespecs) is kept alive until its CQE
[U6].  ``Operation.result()`` raises the OSError of a negative result.

The kernel facts [U*] the code points to are in docs/io_uring.md.
"""

from __future__ import annotations

import errno
import os
import socket

from .._base import fileobj_to_fd
from .._native import ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence, Union

    from .._base import FileDescriptorLike

__all__ = ["Operation", "StatxResult"]

_INT_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1
_MORE = lib.IORING_CQE_F_MORE
_ECANCELED = errno.ECANCELED
_ETIME = errno.ETIME
# The kernel's internal restart codes (ERESTARTSYS, ERESTARTNOINTR,
# ERESTARTNOHAND, ERESTART_RESTARTBLOCK): what a cancelled operation that
# was blocked in an io-wq worker ends with [U7].
_RESTART_CODES = frozenset((512, 513, 514, 516))
_strerror = os.strerror
# Read buffers: the kernel fills them, no need to zero them first.
_new_buffer = ffi.new_allocator(should_clear_after_alloc=False)


def _oserror(err):
    return OSError(err, _strerror(err))


def _seconds(ns):
    sec, nsec = divmod(ns, 1_000_000_000)
    return sec + nsec * 1e-9


class StatxResult:
    """statx(2)'s answer, with os.stat_result's names where they exist
    (st_mode, st_size, st_mtime_ns ...) and st_btime_ns for the birth time
    (None when the filesystem does not record it)."""

    __slots__ = (
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
        "st_btime_ns",
        "stx_mask",
    )

    def __init__(self, stx) -> None:
        self.stx_mask = stx.stx_mask
        self.st_mode = stx.stx_mode
        self.st_ino = stx.stx_ino
        self.st_dev = os.makedev(stx.stx_dev_major, stx.stx_dev_minor)
        self.st_rdev = os.makedev(stx.stx_rdev_major, stx.stx_rdev_minor)
        self.st_nlink = stx.stx_nlink
        self.st_uid = stx.stx_uid
        self.st_gid = stx.stx_gid
        self.st_size = stx.stx_size
        self.st_blksize = stx.stx_blksize
        self.st_blocks = stx.stx_blocks
        self.st_atime_ns = stx.stx_atime.tv_sec * 1_000_000_000 + stx.stx_atime.tv_nsec
        self.st_mtime_ns = stx.stx_mtime.tv_sec * 1_000_000_000 + stx.stx_mtime.tv_nsec
        self.st_ctime_ns = stx.stx_ctime.tv_sec * 1_000_000_000 + stx.stx_ctime.tv_nsec
        self.st_btime_ns = (
            stx.stx_btime.tv_sec * 1_000_000_000 + stx.stx_btime.tv_nsec
            if stx.stx_mask & lib.STATX_BTIME
            else None
        )

    # Floats as os.stat computes them (sec + nsec * 1e-9), to the last bit.
    @property
    def st_atime(self) -> float:
        return _seconds(self.st_atime_ns)

    @property
    def st_mtime(self) -> float:
        return _seconds(self.st_mtime_ns)

    @property
    def st_ctime(self) -> float:
        return _seconds(self.st_ctime_ns)

    def __repr__(self):
        return (
            f"StatxResult(st_mode={self.st_mode:#o}, st_ino={self.st_ino}, "
            f"st_size={self.st_size}, st_mtime_ns={self.st_mtime_ns})"
        )


class Operation:
    """One operation handed to the kernel.

    Its callback is called as ``callback(op)`` when the kernel is done;
    ``op.result()`` then returns the value or raises the OSError the kernel
    gave (OSError(ECANCELED) once cancelled [U7]).  A multishot operation
    (accept with multishot=True) calls back once per result, with ``op.more``
    true while more will come; each result is read in its own callback.
    """

    __slots__ = (
        "_ring",
        "_user_data",
        "_callback",
        "_convert",
        "_value",
        "_errno",
        "_state",
        "_cancel_requested",
        "more",
        "__weakref__",
    )

    _PENDING, _DONE = 0, 1

    def __init__(self, ring, callback, convert):
        self._ring = ring
        self._callback = callback
        self._convert = convert
        self._user_data = 0
        self._value = None
        self._errno = 0
        self._state = self._PENDING
        self._cancel_requested = False
        self.more = False

    def _complete(self, res, flags):
        self.more = bool(flags & _MORE)
        if not self.more:
            self._state = self._DONE
        if res >= 0:
            self._value = self._convert(res, flags)
            self._errno = 0
        else:
            self._value = None
            self._errno = _ECANCELED if -res in _RESTART_CODES else -res  # [U7]
        self._callback(self)

    def done(self) -> bool:
        """True once the last result arrived."""
        return self._state == self._DONE

    def result(self) -> Any:
        """The latest result; raises its OSError, or RuntimeError before any."""
        if self._errno:
            # A new exception each time: one kept here would hold, through
            # its traceback, the frames that raised it (and their buffers).
            raise _oserror(self._errno)
        if self._state == self._PENDING and not self.more:
            raise RuntimeError("the operation has not completed yet")
        return self._value

    def exception(self) -> Optional[OSError]:
        """The latest result's OSError (a new instance each call), or None."""
        return _oserror(self._errno) if self._errno else None

    def cancel(self) -> bool:
        """Ask the kernel to cancel it; False if it is already done.  Its
        callback still comes, with ECANCELED or its real result [U7]."""
        if self._state == self._DONE:
            return False
        self._cancel_requested = True
        return self._ring._cancel(self._user_data)

    def __repr__(self):
        state = "done" if self._state == self._DONE else "pending"
        return f"<Operation {self._user_data} {state}>"


def _ignore(res, flags):
    pass


def _cancel_done(res, flags):
    # An IORING_OP_ASYNC_CANCEL's own CQE: 0, -ENOENT (already done) or
    # -EALREADY (running; it will end by itself).  Its target's CQE is the
    # one that matters [U7].
    pass


class _MultishotAccept:
    """accept(multishot=True): one armed SQE while the kernel keeps it
    (IORING_CQE_F_MORE); re-armed whenever it ends on a success (the kernel
    ends a multishot when the CQ overflows, and every accept is single-shot
    before 5.19) [U13].  Ends on an error, on cancel() or when the ring
    closes."""

    __slots__ = ("ring", "fd", "op")

    def __init__(self, ring, fd, op):
        self.ring = ring
        self.fd = fd
        self.op = op

    def arm(self):
        ring = self.ring
        prio = lib.IORING_ACCEPT_MULTISHOT if ring.multishot_accept else 0
        self.op._user_data = ring._start(
            lib.reactor_ring_prep_ext,
            (
                lib.IORING_OP_ACCEPT,
                self.fd,
                ffi.NULL,
                0,
                0,
                lib.SOCK_CLOEXEC,
                ffi.NULL,
                prio,
                0,
                0,
            ),
            self.complete,
            None,
        )

    def complete(self, res, flags):
        ring, op = self.ring, self.op
        if flags & _MORE or op._cancel_requested or ring._closed:
            op._complete(res, flags)
        elif res >= 0:
            self.arm()
            op._complete(res, flags | _MORE)
        else:
            op._complete(res, flags)


def _none(res, flags):
    return None


def _int(res, flags):
    return res


def _check_callable(callback):
    if not callable(callback):
        raise TypeError(f"callback must be callable, not {type(callback).__name__}")


def _fd(fileobj):
    """An fd from an int or an object with fileno() (the selectors' rule),
    ValueError for one no C int can hold."""
    fd = fileobj_to_fd(fileobj)
    if fd > _INT_MAX:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _dir_fd(dir_fd):
    return lib.AT_FDCWD if dir_fd is None else _fd(dir_fd)


def _size(size, name="size"):
    if not isinstance(size, int):
        raise TypeError(f"{name} must be an int, not {type(size).__name__}")
    if not 0 <= size <= _INT_MAX:
        raise ValueError(f"{name} must be in 0 ... {_INT_MAX}, not {size}")
    return size


def _offset(offset):
    """A file offset; -1 means the file's own position (IORING_FEAT_RW_CUR_POS)."""
    if not isinstance(offset, int):
        raise TypeError(f"offset must be an int, not {type(offset).__name__}")
    if not -1 <= offset <= _INT64_MAX:
        raise ValueError(
            f"offset must be -1 (the file position) or in 0 ... {_INT64_MAX}, not {offset}"
        )
    return offset


def _path(path):
    """A NUL-terminated path the ring owns until the operation completes."""
    path = os.fsencode(path)  # TypeError for what is not a path
    if b"\0" in path:
        raise ValueError("embedded null byte in path")
    return ffi.new("char[]", path)


def _readable_buffer(data):
    """(cdata, length) for any buffer-protocol object, no copy."""
    if isinstance(data, str):
        raise TypeError("data must be a bytes-like object, not str")
    try:
        view = ffi.from_buffer(data)
    except TypeError:
        raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}") from None
    return view, len(view)


def _writable_buffer(buffer):
    try:
        view = ffi.from_buffer(buffer, require_writable=True)
    except (TypeError, BufferError):  # not a buffer; a read-only one
        raise TypeError(
            f"buffer must be a writable bytes-like object, not {type(buffer).__name__}"
        ) from None
    return view, len(view)


def _iovecs(buffers, writable):
    """An iovec array over `buffers`, and what keeps them alive [U6]."""
    if isinstance(buffers, (str, bytes, bytearray, memoryview)):
        raise TypeError("buffers must be a sequence of bytes-like objects")
    views = [(_writable_buffer(b) if writable else _readable_buffer(b)) for b in buffers]
    if not 0 < len(views) <= 1024:  # IOV_MAX
        raise ValueError(f"buffers must hold 1 ... 1024 buffers, not {len(views)}")
    iov = ffi.new("struct iovec[]", len(views))
    total = 0
    for i, (view, length) in enumerate(views):
        iov[i].iov_base = view
        iov[i].iov_len = length
        total += length
    if total > _INT_MAX:
        raise ValueError("the buffers hold more than 2 GiB")
    return iov, len(views), (iov, views)


def _msg_flags(flags):
    if not isinstance(flags, int):
        raise TypeError(f"flags must be an int, not {type(flags).__name__}")
    if not 0 <= flags <= _INT_MAX:
        raise ValueError(f"invalid flags {flags:#x}")
    return flags


def _family_of(fd):
    probe = socket.socket(fileno=fd)  # reads the family with getsockname()
    try:
        return probe.family
    finally:
        probe.detach()


def _sockaddr(storage, family, address):
    """Fill a sockaddr_storage from a Python address; its length."""
    if family == socket.AF_UNIX:
        path = os.fsencode(address)
        rc = lib.reactor_sockaddr_unix(storage, path, len(path))
    elif family in (socket.AF_INET, socket.AF_INET6):
        if not isinstance(address, tuple) or not 2 <= len(address) <= (
            2 if family == socket.AF_INET else 4
        ):
            raise TypeError(f"address must be a (host, port) tuple, not {address!r}")
        host, port = address[0], address[1]
        flowinfo = address[2] if len(address) > 2 else 0
        scope_id = address[3] if len(address) > 3 else 0
        if not isinstance(host, str) or not isinstance(port, int):
            raise TypeError(f"address must be a (str, int) tuple, not {address!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0 ... 65535, not {port}")
        if not (
            isinstance(flowinfo, int)
            and 0 <= flowinfo <= _UINT32_MAX
            and isinstance(scope_id, int)
            and 0 <= scope_id <= _UINT32_MAX
        ):
            raise ValueError(f"invalid flowinfo or scope_id in {address!r}")
        try:
            packed = socket.inet_pton(family, host)
        except OSError:
            raise ValueError(f"{host!r} is not a numeric address (no name lookups here)") from None
        rc = lib.reactor_sockaddr_inet(storage, family, packed, port, flowinfo, scope_id)
    else:
        raise ValueError(f"unsupported address family {family!r}")
    if rc < 0:
        raise _oserror(-rc)
    return rc


class _Operations:
    """The operations of a Ring: each checks its arguments, prepares one SQE
    through the Ring's ``_start`` and returns an Operation."""

    __slots__ = ()
    _start: "Callable[..., int]"  # Ring._start (for mypy: a mixin's one requirement)

    def _op(self, callback, convert, prep, args, keep):
        _check_callable(callback)
        op = Operation(self, callback, convert)
        op._user_data = self._start(prep, args, op._complete, keep)
        return op

    def nop(self, callback: Callable[[Operation], Any]) -> Operation:
        """An operation that does nothing: result() is None."""
        return self._op(
            callback,
            _none,
            lib.reactor_ring_prep,
            (lib.IORING_OP_NOP, -1, ffi.NULL, 0, 0, 0),
            None,
        )

    def read(
        self, fd: FileDescriptorLike, size: int, offset: int, callback: Callable[[Operation], Any]
    ) -> Operation:
        """pread(fd, size, offset) (offset -1: at the file's position, which
        moves): result() is the bytes read."""
        fd, size, offset = _fd(fd), _size(size), _offset(offset)
        buf = _new_buffer("char[]", max(size, 1))
        return self._op(
            callback,
            lambda res, flags: ffi.unpack(buf, res),
            lib.reactor_ring_prep,
            (lib.IORING_OP_READ, fd, buf, size, offset, 0),
            buf,
        )

    def readinto(
        self,
        fd: FileDescriptorLike,
        buffer: Any,
        offset: int,
        callback: Callable[[Operation], Any],
    ) -> Operation:
        """preadv into a writable buffer: result() is the number of bytes read."""
        fd, offset = _fd(fd), _offset(offset)
        view, length = _writable_buffer(buffer)
        if length > _INT_MAX:
            raise ValueError("buffer is larger than 2 GiB")
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_READ, fd, view, length, offset, 0),
            view,
        )

    def readv(
        self,
        fd: FileDescriptorLike,
        buffers: Sequence[Any],
        offset: int,
        callback: Callable[[Operation], Any],
    ) -> Operation:
        """preadv(fd, buffers, offset): result() is the number of bytes read."""
        fd, offset = _fd(fd), _offset(offset)
        iov, count, keep = _iovecs(buffers, writable=True)
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_READV, fd, iov, count, offset, 0),
            keep,
        )

    def write(
        self, fd: FileDescriptorLike, data: Any, offset: int, callback: Callable[[Operation], Any]
    ) -> Operation:
        """pwrite(fd, data, offset) (offset -1: at the file's position):
        result() is the number of bytes written."""
        fd, offset = _fd(fd), _offset(offset)
        view, length = _readable_buffer(data)
        if length > _INT_MAX:
            raise ValueError("data is larger than 2 GiB")
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_WRITE, fd, view, length, offset, 0),
            view,
        )

    def writev(
        self,
        fd: FileDescriptorLike,
        buffers: Sequence[Any],
        offset: int,
        callback: Callable[[Operation], Any],
    ) -> Operation:
        """pwritev(fd, buffers, offset): result() is the number of bytes written."""
        fd, offset = _fd(fd), _offset(offset)
        iov, count, keep = _iovecs(buffers, writable=False)
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_WRITEV, fd, iov, count, offset, 0),
            keep,
        )

    def openat(
        self,
        path: Union[str, bytes, os.PathLike],
        flags: int,
        mode: int,
        callback: Callable[[Operation], Any],
        *,
        dir_fd: Optional[int] = None,
    ) -> Operation:
        """os.open(path, flags, mode, dir_fd=dir_fd) (O_CLOEXEC is added, as
        Python makes every fd): result() is the new fd, which the caller owns."""
        cpath = _path(path)
        if not isinstance(flags, int) or not isinstance(mode, int):
            raise TypeError("flags and mode must be ints")
        if not 0 <= flags <= _INT_MAX or not 0 <= mode <= 0o7777:
            raise ValueError(f"invalid flags {flags:#x} or mode {mode:#o}")
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_OPENAT, _dir_fd(dir_fd), cpath, mode, 0, flags | os.O_CLOEXEC),
            cpath,
        )

    def close_fd(self, fd: FileDescriptorLike, callback: Callable[[Operation], Any]) -> Operation:
        """close(fd) in the kernel's order of operations: result() is None."""
        return self._op(
            callback,
            _none,
            lib.reactor_ring_prep,
            (lib.IORING_OP_CLOSE, _fd(fd), ffi.NULL, 0, 0, 0),
            None,
        )

    def statx(
        self,
        path: Union[str, bytes, os.PathLike, int],
        callback: Callable[[Operation], Any],
        *,
        dir_fd: Optional[int] = None,
        follow_symlinks: bool = True,
    ) -> Operation:
        """os.stat(path) (an int path: that fd, as os.stat accepts):
        result() is a StatxResult."""
        if isinstance(path, int):
            dirfd, cpath, flags = _fd(path), ffi.new("char[]", b""), lib.AT_EMPTY_PATH
        else:
            dirfd, cpath = _dir_fd(dir_fd), _path(path)
            flags = 0 if follow_symlinks else lib.AT_SYMLINK_NOFOLLOW
        stx = ffi.new("struct statx *")
        return self._op(
            callback,
            lambda res, fl: StatxResult(stx),
            lib.reactor_ring_prep_ext,
            (
                lib.IORING_OP_STATX,
                dirfd,
                cpath,
                lib.STATX_BASIC_STATS | lib.STATX_BTIME,
                0,
                flags,
                stx,
                0,
                0,
                0,
            ),
            (cpath, stx),
        )

    def fsync(
        self,
        fd: FileDescriptorLike,
        callback: Callable[[Operation], Any],
        *,
        datasync: bool = False,
    ) -> Operation:
        """fsync(fd) (fdatasync with datasync=True): result() is None."""
        return self._op(
            callback,
            _none,
            lib.reactor_ring_prep,
            (
                lib.IORING_OP_FSYNC,
                _fd(fd),
                ffi.NULL,
                0,
                0,
                lib.IORING_FSYNC_DATASYNC if datasync else 0,
            ),
            None,
        )

    def ftruncate(
        self, fd: FileDescriptorLike, length: int, callback: Callable[[Operation], Any]
    ) -> Operation:
        """ftruncate(fd, length) (IORING_OP_FTRUNCATE, Linux 6.9: check
        "FTRUNCATE" in ring.supported_ops): result() is None."""
        if not isinstance(length, int):
            raise TypeError(f"length must be an int, not {type(length).__name__}")
        if not 0 <= length <= _INT64_MAX:
            raise ValueError(f"length must be in 0 ... {_INT64_MAX}, not {length}")
        return self._op(
            callback,
            _none,
            lib.reactor_ring_prep,
            (lib.IORING_OP_FTRUNCATE, _fd(fd), ffi.NULL, 0, length, 0),
            None,
        )

    def recv(
        self,
        sock: FileDescriptorLike,
        size: int,
        callback: Callable[[Operation], Any],
        flags: int = 0,
    ) -> Operation:
        """sock.recv(size, flags): result() is the bytes received (b"" at EOF)."""
        fd, size = _fd(sock), _size(size)
        buf = _new_buffer("char[]", max(size, 1))
        return self._op(
            callback,
            lambda res, fl: ffi.unpack(buf, res),
            lib.reactor_ring_prep,
            (lib.IORING_OP_RECV, fd, buf, size, 0, _msg_flags(flags)),
            buf,
        )

    def recv_into(
        self,
        sock: FileDescriptorLike,
        buffer: Any,
        callback: Callable[[Operation], Any],
        flags: int = 0,
    ) -> Operation:
        """sock.recv_into(buffer, 0, flags): result() is the number of bytes."""
        fd = _fd(sock)
        view, length = _writable_buffer(buffer)
        if length > _INT_MAX:
            raise ValueError("buffer is larger than 2 GiB")
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_RECV, fd, view, length, 0, _msg_flags(flags)),
            view,
        )

    def send(
        self,
        sock: FileDescriptorLike,
        data: Any,
        callback: Callable[[Operation], Any],
        flags: int = 0,
    ) -> Operation:
        """sock.send(data, flags): result() is the number of bytes sent
        (possibly fewer than len(data), as send(2))."""
        fd = _fd(sock)
        view, length = _readable_buffer(data)
        if length > _INT_MAX:
            raise ValueError("data is larger than 2 GiB")
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep,
            (lib.IORING_OP_SEND, fd, view, length, 0, _msg_flags(flags) | socket.MSG_NOSIGNAL),
            view,
        )

    def accept(
        self,
        sock: FileDescriptorLike,
        callback: Callable[[Operation], Any],
        *,
        multishot: bool = False,
    ) -> Operation:
        """accept4(sock, SOCK_CLOEXEC): result() is the new connection's fd,
        which the caller owns.  multishot=True keeps accepting, one callback
        per connection, until cancelled [U13]."""
        fd = _fd(sock)
        if multishot:
            return self._accept_multishot(fd, callback)
        return self._op(
            callback,
            _int,
            lib.reactor_ring_prep_ext,
            (lib.IORING_OP_ACCEPT, fd, ffi.NULL, 0, 0, lib.SOCK_CLOEXEC, ffi.NULL, 0, 0, 0),
            None,
        )

    def _accept_multishot(self, fd, callback):
        _check_callable(callback)
        op = Operation(self, callback, _int)
        _MultishotAccept(self, fd, op).arm()
        return op

    def connect(
        self, sock: Union[socket.socket, int], address: Any, callback: Callable[[Operation], Any]
    ) -> Operation:
        """sock.connect(address) for AF_INET (host, port), AF_INET6 (host,
        port[, flowinfo, scope_id]) with numeric hosts, and AF_UNIX paths:
        result() is None."""
        fd = _fd(sock)
        family = sock.family if isinstance(sock, socket.socket) else _family_of(fd)
        storage = ffi.new("struct sockaddr_storage *")
        length = _sockaddr(storage, family, address)
        return self._op(
            callback,
            _none,
            lib.reactor_ring_prep,
            (lib.IORING_OP_CONNECT, fd, storage, 0, length, 0),
            storage,
        )

    def timeout(self, seconds: float, callback: Callable[[Operation], Any]) -> Operation:
        """Completes after `seconds` (a relative IORING_OP_TIMEOUT):
        result() is None; cancelled, it raises OSError(ECANCELED)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
        if not 0 <= seconds <= 2**62 / 1e9:  # also refuses NaN
            raise ValueError(f"seconds must be in 0 ... {2**62 / 1e9:.0f}, not {seconds}")
        _check_callable(callback)
        ts = ffi.new("struct __kernel_timespec *")
        ts.tv_sec, ts.tv_nsec = divmod(int(seconds * 1e9), 1_000_000_000)
        op = Operation(self, callback, _none)

        def expired(res, flags):  # -ETIME is how a timeout succeeds
            op._complete(0 if res == -_ETIME else res, flags)

        op._user_data = self._start(
            lib.reactor_ring_prep, (lib.IORING_OP_TIMEOUT, -1, ts, 1, 0, 0), expired, ts
        )
        return op

    # -- closing -----------------------------------------------------------------
