"""io_uring: the chapter's fifth model, asynchronous IO.

The program hands the kernel a whole operation (read 4 KiB at this offset
into this buffer; accept a connection; send these bytes) and is told when it
is done, the data already copied.  ``Ring`` puts an io_uring next to a loop:
its completions are callbacks on a ``reactor.Reactor`` (or an asyncio loop),
so readiness IO and completion IO share one loop, as libuv does for its file
operations.

    with reactor.Reactor() as loop, reactor.Ring(loop) as ring:
        def done(op):
            print(op.result())          # the bytes read, or raises OSError
            loop.stop()
        ring.read(fd, 4096, 0, done)
        loop.run()

Facts about io_uring this module relies on (the C side, _native/ring.c,
points here):

[U1] Two rings in memory shared with the kernel.  We fill submission queue
     entries (SQEs) and publish the SQ tail with a release store; the kernel
     posts completion queue entries (CQEs: user_data, res, flags) and
     publishes the CQ tail with a release store, which we load with acquire
     before reading them, then give the slots back by storing the CQ head
     with release.  res is the syscall's result: >= 0, or -errno.
[U2] Batching.  SQEs prepared during one loop iteration go to the kernel in
     one io_uring_enter(), made by a callback the first of them scheduled
     with call_soon() (the flush).  Regular-file reads served from the page
     cache complete during that very enter, so the flush reaps at once.
     Completions cross the FFI in batches: one call copies up to a ring's
     worth of CQEs into three flat arrays (user_data, res, flags).  What the
     completion callbacks of a batch prepare (an echo's send, then its next
     recv) goes to the kernel at the end of that batch, by one more enter in
     the same loop iteration, and so on for a few rounds: one loop iteration
     (and one epoll_wait) per message instead of three.
[U3] Completions wake the loop through an eventfd registered with
     IORING_REGISTER_EVENTFD, readable whenever CQEs were posted; it sits in
     the loop's selector (Reactor.register, asyncio's add_reader).  Its
     callback drains it, then reaps.
[U4] Overflow.  With IORING_FEAT_NODROP (5.5) the kernel never drops a CQE
     when the CQ is full: it keeps it on an overflow list and sets
     IORING_SQ_CQ_OVERFLOW in the SQ flags, and only io_uring_enter() with
     IORING_ENTER_GETEVENTS moves the list into the ring.  Likewise, with
     COOP_TASKRUN or DEFER_TASKRUN, completions can wait as task work that
     only an enter runs (IORING_SQ_TASKRUN).  The reap enters whenever the
     kernel asks.  If the kernel could not even allocate an overflow entry it
     reports the loss (EBADR) at the next enter: that is raised, loudly.
[U5] SQ full.  Preparing fails with EBUSY; the ring submits at once what
     it holds and prepares again.  Only if the kernel takes nothing (EBUSY
     or EAGAIN: it is short of resources) does the operation wait in a
     Python backlog, submitted after the next completions.  There is no cap
     on operations in flight: a server may hold a recv per connection.
[U6] Memory handed to the kernel (read buffers, the data of a write, paths,
     iovecs, timespecs, socket addresses) is referenced from the operation's
     record until its last CQE arrives, whoever still waits for it: an
     io-wq worker may copy into a read buffer long after the awaiting task
     was cancelled.  The record is the only thing the kernel's user_data
     names (a counter, never a pointer).
[U7] Cancelling is itself an operation (IORING_OP_ASYNC_CANCEL, by
     user_data).  The target still posts exactly one last CQE: -ECANCELED,
     or its own result if it finished first.  So a cancelled read may have
     read: Operation.result() says so, and the file objects (_files.py) do
     not move their position for it.  An operation already running in an
     io-wq worker (a blocking open, say) cannot be taken back: the cancel's
     own CQE is -EALREADY, the worker is interrupted as by a signal, and
     the target ends with its real result or with the kernel's internal
     -ERESTARTSYS (512), which Operation reports as ECANCELED.
[U8] Closing.  Every operation is cancelled (IORING_ASYNC_CANCEL_ANY |
     _ALL, 5.19), then close() waits (at most CLOSE_TIMEOUT seconds) for
     every last CQE before unmapping the rings and closing the fd.  Without
     the wait a pending multishot accept keeps the listening socket alive in
     the kernel after the ring fd is closed (the ring's teardown runs later,
     asynchronously), and a worker could still be writing into a buffer.  If
     the wait times out, the records (and their buffers) are kept for the
     life of the process, and a warning says so.  Callbacks of operations
     ended by close() run inside close(), their result() raising the
     OSError(ECANCELED) the kernel gave (or their real result).
[U9] Fork.  The rings are mapped with MADV_DONTFORK (as liburing's
     io_uring_ring_dontfork): a child has no mapping of them, and a child
     sharing them would corrupt the parent's queues.  In the child a Ring is
     closed: its copy of the ring fd is closed, a fresh eventfd takes the old
     eventfd's number (so nothing in the child drains the parent's wakeups,
     and a selector rebuilt after fork still finds the fd), its operations
     are forgotten (they are the parent's), and using it raises
     RuntimeError.  open_file() & co. make the child a ring of its own.
[U10] Setup flags, tried in order until the kernel accepts (EINVAL means
     "unknown flag": an older kernel): NO_SQARRAY (6.6: no SQ index array),
     SUBMIT_ALL (5.18: a bad SQE does not stop the batch behind it),
     COOP_TASKRUN + TASKRUN_FLAG (5.19: completions run as task work at the
     next kernel entry instead of interrupting the loop with an IPI).
     DEFER_TASKRUN (6.1) needs SINGLE_ISSUER, which forbids entering the ring
     from any other thread (a finalizer run by the garbage collector, say):
     not used.
[U11] Refusal.  io_uring_setup() fails with EPERM when
     kernel.io_uring_disabled is 2 (or 1 and we are not in
     kernel.io_uring_group), or when a seccomp filter refuses it (Docker's
     default profile since 25.0, most CI sandboxes); with ENOSYS on kernels
     before 5.1, without CONFIG_IO_URING, or under a seccomp filter answering
     ENOSYS.  uring_available() says which; Ring() raises that OSError.
[U12] A provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19) is an array
     of struct io_uring_buf whose tail overlays bufs[0].resv: entries are
     written field by field, never as whole structs (_native/ring.c).  A
     recv picks its buffer when it is first tried: with none free it ends
     with ENOBUFS at once, data or not.  With IORING_RECVSEND_POLL_FIRST
     (5.19) it waits for data first, so ENOBUFS means "data, no buffer"
     (the price: a poll armed even when the data is there already).  A
     pool smaller than the connections with data at once makes recvs fail
     with ENOBUFS and try again: buffers per connection cost memory per idle
     connection instead.
[U13] Multishot accept (5.19): one SQE, one CQE per connection with
     IORING_CQE_F_MORE set while it stays armed; the kernel ends it (a last
     CQE without MORE) on an error, or when a CQE does not fit (CQ overflow).
     The probe cannot see ioprio flags: IORING_OP_SOCKET, which came in the
     same release, stands for it.  Without it accept(multishot=True) re-arms
     a single-shot accept after each connection, transparently.
[U14] Offsets on streams.  pread(2) on a pipe or a socket fails with
     ESPIPE; io_uring ignores the offset of a read or write on a file that
     cannot seek and reads or writes the stream.
[U15] Links.  SQEs flagged IOSQE_IO_LINK run one after the other, and a
     failure cancels the rest (ECANCELED).  For a read or write a short
     result is a failure; for send and recv it is not, unless MSG_WAITALL
     asked for all (then io_uring retries a partial transfer itself, and
     only an error ends it short).  With IOSQE_IO_HARDLINK the rest runs
     whatever happened (a close after reads that may end short at EOF).  A
     chain must reach the kernel in one io_uring_enter: one cut by a full
     SQ is two chains.
[U16] Direct descriptors (5.15; a sparse table of them 5.19): files in a
     table of the ring's own, which only its SQEs use (IOSQE_FIXED_FILE, fd
     = the slot).  An openat can put its file straight into a slot
     (file_index = slot + 1; O_CLOEXEC means nothing there and is refused),
     so open, read and close can be one linked chain, without the fd
     number coming back to us in between.  A slot is free again only once
     its close completed: an openat into a used slot replaces its file.
[U17] A batch of CQEs is copied out and its slots given back to the kernel
     before any callback runs [U1, U2], so the copy is all that is left of
     them.  A BaseException leaving a callback (KeyboardInterrupt,
     SystemExit) leaves the rest of the batch in Ring._batch, and a flush
     is scheduled: the next dispatch delivers it first, in order, so no
     awaiter waits forever for a completion the kernel already gave.  A
     CQE whose user_data names no operation (a bug in reactor, never the
     caller's) is reported through the loop's exception handler as a
     RuntimeError once the batch is done; the rest of the batch runs.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import socket
import time
import warnings
import weakref

from ._base import fileobj_to_fd
from ._native import ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence, Union

    from ._base import FileDescriptorLike

__all__ = ["Ring", "Operation", "BufferRing", "StatxResult", "uring_available",
           "UringAvailability", "CLOSE_TIMEOUT"]

logger = logging.getLogger("reactor")

# How long close() waits for the kernel to finish cancelled operations
# before giving their buffers up for lost [U8].  Cancellation of anything
# but a read or write already running in a worker is immediate.
CLOSE_TIMEOUT = 10.0

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
_EBUSY = errno.EBUSY
_EAGAIN = errno.EAGAIN
_EINTR = errno.EINTR
_unpack = ffi.unpack
_strerror = os.strerror
# Read buffers: the kernel fills them, no need to zero them first.
_new_buffer = ffi.new_allocator(should_clear_after_alloc=False)

# Operations every ring needs; a kernel lacking one counts as "no io_uring".
_REQUIRED_OPS = ("NOP", "READ", "WRITE", "READV", "WRITEV", "OPENAT", "CLOSE", "STATX",
                 "FSYNC", "ASYNC_CANCEL", "TIMEOUT", "SEND", "RECV", "ACCEPT", "CONNECT")
_REQUIRED_FEATURES = ("SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS", "EXT_ARG")
_OP_NAMES = ("NOP", "READV", "WRITEV", "FSYNC", "TIMEOUT", "ACCEPT", "ASYNC_CANCEL",
             "CONNECT", "OPENAT", "CLOSE", "STATX", "READ", "WRITE", "SEND", "RECV",
             "SHUTDOWN", "SOCKET", "FTRUNCATE")
_FEATURE_NAMES = ("SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS", "FAST_POLL",
                  "EXT_ARG", "NATIVE_WORKERS", "CQE_SKIP", "LINKED_FILE", "REG_REG_RING",
                  "RECVSEND_BUNDLE", "MIN_TIMEOUT")

# [U10], most wanted first.
_SETUP_FLAG_SETS = (
    lib.IORING_SETUP_NO_SQARRAY | lib.IORING_SETUP_SUBMIT_ALL
    | lib.IORING_SETUP_COOP_TASKRUN | lib.IORING_SETUP_TASKRUN_FLAG,
    lib.IORING_SETUP_SUBMIT_ALL | lib.IORING_SETUP_COOP_TASKRUN
    | lib.IORING_SETUP_TASKRUN_FLAG,
    lib.IORING_SETUP_SUBMIT_ALL,
    0,
)
_setup_flags_start = 0  # index of the first set this kernel may accept
# Enter-and-reap rounds one flush may make while completion callbacks keep
# preparing more [U2]; then the loop gets a turn.
_ROUNDS = 8
# Direct-descriptor slots a ring registers when first asked [U16].
_SLOTS = 128


def _oserror(err):
    return OSError(err, _strerror(err))


def _setup(cring, entries, cq_entries):
    """io_uring_setup with the best flags this kernel accepts [U10]; 0 or -errno."""
    global _setup_flags_start
    rc = -errno.EINVAL
    for index in range(_setup_flags_start, len(_SETUP_FLAG_SETS)):
        rc = lib.reactor_ring_setup(cring, entries, cq_entries, _SETUP_FLAG_SETS[index])
        if rc != -errno.EINVAL:
            if rc == 0:
                _setup_flags_start = index
            return rc
    return rc


# -- availability ---------------------------------------------------------------


class UringAvailability:
    """Whether io_uring works here; false with the reason when not.

    ``bool(uring_available())`` answers; ``.reason`` says why not (or what
    was found), ``.errno`` is the refusing errno (None when available or
    when the kernel lacks a feature rather than refusing).
    """

    __slots__ = ("available", "reason", "errno", "ops", "features")

    def __init__(self, available: bool, reason: str, err: Optional[int] = None,
                 ops: frozenset = frozenset(), features: frozenset = frozenset()) -> None:
        self.available = available
        self.reason = reason
        self.errno = err
        self.ops = ops
        self.features = features

    def __bool__(self) -> bool:
        return self.available

    def __repr__(self):
        return f"<UringAvailability {self.available} {self.reason!r}>"


_availability: Optional[UringAvailability] = None


def _refusal_reason(err):
    """Why io_uring_setup() failed with -err, in words [U11]."""
    name = errno.errorcode.get(err, str(err))
    if err == errno.EPERM:
        try:
            with open("/proc/sys/kernel/io_uring_disabled", encoding="ascii") as f:
                disabled = f.read().strip()
        except OSError:
            disabled = None
        if disabled == "2":
            why = "kernel.io_uring_disabled = 2"
        elif disabled == "1":
            why = ("kernel.io_uring_disabled = 1 and this process is not in "
                   "kernel.io_uring_group")
        else:
            why = ("kernel.io_uring_disabled allows it, so a seccomp filter: a container's "
                   "profile?")
        return f"io_uring_setup() refused: {name} ({why})"
    if err == errno.ENOSYS:
        return (f"io_uring_setup() refused: {name} (a kernel without io_uring: before 5.1, "
                "CONFIG_IO_URING off, or a seccomp filter)")
    return f"io_uring_setup() failed: {name} ({_strerror(err)})"


def _probe(cring):
    """(ops, features) of a set-up ring, by name."""
    supported = ffi.new("uint8_t[]", lib.REACTOR_RING_PROBE_OPS)
    ops = set()
    if lib.reactor_ring_probe(cring, supported, lib.REACTOR_RING_PROBE_OPS) >= 0:
        ops = {name for name in _OP_NAMES if supported[getattr(lib, "IORING_OP_" + name)]}
    features = {name for name in _FEATURE_NAMES
                if cring.features & getattr(lib, "IORING_FEAT_" + name)}
    return frozenset(ops), frozenset(features)


def uring_available() -> UringAvailability:
    """Whether io_uring can be used in this process; falsy with the reason
    when it is refused [U11] or the kernel lacks what reactor needs (kernel
    5.11 or later).  Asked once per process, by setting up a tiny ring."""
    global _availability
    if _availability is None:
        _availability = _check_available()
    return _availability


def _check_available():
    cring = ffi.new("struct reactor_ring *")
    rc = _setup(cring, 2, 0)
    if rc < 0:
        return UringAvailability(False, _refusal_reason(-rc), -rc)
    try:
        ops, features = _probe(cring)
    finally:
        lib.reactor_ring_close(cring)
    missing = [f"IORING_FEAT_{name}" for name in _REQUIRED_FEATURES if name not in features]
    missing += [f"IORING_OP_{name}" for name in _REQUIRED_OPS if name not in ops]
    if missing:
        return UringAvailability(False, "the kernel lacks " + ", ".join(missing)
                                 + " (reactor needs Linux 5.11 or later)", None, ops, features)
    return UringAvailability(True, f"io_uring available (setup flags {cring.setup_flags:#x})",
                             None, ops, features)


# -- results ---------------------------------------------------------------------


def _seconds(ns):
    sec, nsec = divmod(ns, 1_000_000_000)
    return sec + nsec * 1e-9


class StatxResult:
    """statx(2)'s answer, with os.stat_result's names where they exist
    (st_mode, st_size, st_mtime_ns ...) and st_btime_ns for the birth time
    (None when the filesystem does not record it)."""

    __slots__ = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
                 "st_blksize", "st_blocks", "st_rdev", "st_atime_ns", "st_mtime_ns",
                 "st_ctime_ns", "st_btime_ns", "stx_mask")

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
        self.st_btime_ns = (stx.stx_btime.tv_sec * 1_000_000_000 + stx.stx_btime.tv_nsec
                            if stx.stx_mask & lib.STATX_BTIME else None)

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
        return (f"StatxResult(st_mode={self.st_mode:#o}, st_ino={self.st_ino}, "
                f"st_size={self.st_size}, st_mtime_ns={self.st_mtime_ns})")


class Operation:
    """One operation handed to the kernel.

    Its callback is called as ``callback(op)`` when the kernel is done;
    ``op.result()`` then returns the value or raises the OSError the kernel
    gave (OSError(ECANCELED) once cancelled [U7]).  A multishot operation
    (accept with multishot=True) calls back once per result, with ``op.more``
    true while more will come; each result is read in its own callback.
    """

    __slots__ = ("_ring", "_user_data", "_callback", "_convert", "_value", "_errno",
                 "_state", "_cancel_requested", "more", "__weakref__")

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
            (lib.IORING_OP_ACCEPT, self.fd, ffi.NULL, 0, 0, lib.SOCK_CLOEXEC, ffi.NULL, prio,
             0, 0), self.complete, None)

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
        raise ValueError(f"offset must be -1 (the file position) or in 0 ... {_INT64_MAX}, "
                         f"not {offset}")
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
        raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}") \
            from None
    return view, len(view)


def _writable_buffer(buffer):
    try:
        view = ffi.from_buffer(buffer, require_writable=True)
    except (TypeError, BufferError):  # not a buffer; a read-only one
        raise TypeError("buffer must be a writable bytes-like object, not "
                        f"{type(buffer).__name__}") from None
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


# -- the loops a Ring can sit on ----------------------------------------------------


class _ReactorDriver:
    """A reactor.Reactor: register(fd, EVENT_READ, callback(fileobj, mask))."""

    def __init__(self, loop):
        self.loop_ref = weakref.ref(loop)

    def watch(self, fd, callback):
        self.loop_ref().register(fd, 1, lambda fileobj, mask: callback())

    def unwatch(self, fd):
        loop = self.loop_ref()
        if loop is not None and not loop.is_closed():
            try:
                loop.unregister(fd)
            except (KeyError, ValueError):
                pass  # the loop dropped it already (its selector was rebuilt)

    def report(self, exc, callback):
        loop = self.loop_ref()
        if loop is None or loop.is_closed():
            logger.error("exception in io_uring callback %r", callback, exc_info=exc)
        else:
            loop.handle_exception(exc, callback)


class _AsyncioDriver(_ReactorDriver):
    """An asyncio loop (the stdlib's, reactor's, uvloop): add_reader(fd, callback)."""

    def watch(self, fd, callback):
        self.loop_ref().add_reader(fd, callback)

    def unwatch(self, fd):
        loop = self.loop_ref()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(fd)

    def report(self, exc, callback):
        loop = self.loop_ref()
        if loop is None or loop.is_closed():
            logger.error("exception in io_uring callback %r", callback, exc_info=exc)
        else:
            loop.call_exception_handler({"message": f"exception in io_uring callback "
                                                    f"{callback!r}", "exception": exc})


def _driver_for(loop):
    if hasattr(loop, "add_reader") and hasattr(loop, "call_soon"):
        return _AsyncioDriver(loop)
    if hasattr(loop, "register") and hasattr(loop, "call_soon"):
        return _ReactorDriver(loop)
    raise TypeError(f"loop must be a reactor.Reactor or an asyncio event loop, not "
                    f"{type(loop).__name__}")


_live_rings: "weakref.WeakSet[Ring]" = weakref.WeakSet()
# Records of operations close() gave up waiting for [U8]: the kernel may
# still write into their buffers, so they are never freed.
_abandoned: list = []


# -- the ring ----------------------------------------------------------------------


class Ring:
    """An io_uring whose completions are callbacks on `loop` (a
    reactor.Reactor or an asyncio event loop).

    ``entries`` is the submission queue's size (rounded up to a power of
    two by the kernel), ``cq_entries`` the completion queue's (default four
    times as many).  Neither limits how many operations may be in flight
    [U4, U5].  Raises OSError when io_uring is refused here [U11].

    Every operation returns an Operation and calls ``callback(op)`` from the
    loop when done.  Arguments are checked before anything reaches the
    kernel: TypeError for a wrong type, ValueError for a value out of range;
    RuntimeError once the ring is closed (or inherited across fork [U9]).
    A Ring belongs to its loop's thread, as the loop does.
    """

    def __init__(self, loop: Any, entries: int = 256, *, cq_entries: Optional[int] = None) -> None:
        self._closed = True  # until set up: __del__ and close() have nothing to do
        self._forked = False
        self._eventfd = -1
        driver = _driver_for(loop)
        entries = _size(entries, "entries")
        if not 1 <= entries <= 32768:
            raise ValueError(f"entries must be in 1 ... 32768, not {entries}")
        if cq_entries is None:
            cq_entries = min(4 * entries, 65536)
        cq_entries = _size(cq_entries, "cq_entries")
        if not entries <= cq_entries <= 65536:
            raise ValueError(f"cq_entries must be in entries ... 65536, not {cq_entries}")
        cring = ffi.new("struct reactor_ring *")
        rc = _setup(cring, entries, cq_entries)
        if rc < 0:
            raise OSError(-rc, f"io_uring is not available: {_refusal_reason(-rc)}")
        efd = lib.reactor_eventfd(0, lib.EFD_CLOEXEC | lib.EFD_NONBLOCK)
        if efd < 0:
            lib.reactor_ring_close(cring)
            raise _oserror(-efd)
        rc = lib.reactor_ring_register(cring, lib.IORING_REGISTER_EVENTFD,
                                       ffi.new("int32_t *", efd), 1)
        if rc < 0:
            os.close(efd)
            lib.reactor_ring_close(cring)
            raise _oserror(-rc)
        self._cring = cring
        self._eventfd = efd
        self._driver = driver
        self._loop_ref = driver.loop_ref
        self._ops: dict[int, tuple] = {}          # user_data -> (callback(res, flags), keep)
        self._backlog: dict[int, tuple] = {}      # user_data -> (prep, args, entry) [U5]
        self._next_user_data = 1
        self._flush_scheduled = False
        self._draining = False                    # in _submit_and_reap: it submits [U2]
        self._batch: Any = None                   # completions reaped, being dispatched
        self._batch_size = cring.cq_entries
        self._sq_entries = cring.sq_entries
        self._user_data = ffi.new("uint64_t[]", self._batch_size)
        self._res = ffi.new("int32_t[]", self._batch_size)
        self._flags = ffi.new("uint32_t[]", self._batch_size)
        self._implicit = False  # a ring open_file() made: no ResourceWarning
        self._slots: Optional[list] = None  # free direct-descriptor slots [U16]
        self._slots_refused = False
        self._cancel_any = True  # IORING_ASYNC_CANCEL_ANY (5.19), until EINVAL
        self.supported_ops, self.features = _probe(cring)
        # Whether accept(multishot=True) gets one SQE for all connections [U13].
        self.multishot_accept = "SOCKET" in self.supported_ops
        self._closed = False
        try:
            driver.watch(efd, self._on_eventfd)
        except BaseException:
            self._closed = True
            os.close(efd)
            lib.reactor_ring_close(cring)
            raise
        _live_rings.add(self)

    # -- introspection ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sq_entries(self) -> int:
        return self._cring.sq_entries

    @property
    def cq_entries(self) -> int:
        return self._cring.cq_entries

    @property
    def setup_flags(self) -> int:
        return self._cring.setup_flags

    def in_flight(self) -> int:
        """Operations handed to the kernel (or waiting to be) and not done."""
        return len(self._ops) + len(self._backlog)

    def __repr__(self):
        state = "closed" if self._closed else f"fd={self._cring.fd} in_flight={self.in_flight()}"
        return f"<Ring {state}>"

    # -- submitting ---------------------------------------------------------------

    def _check_open(self):
        if self._closed:
            if self._forked:
                raise RuntimeError("this Ring belongs to the parent process (inherited "
                                   "across fork); make a new one")
            raise RuntimeError("the Ring is closed")

    def _start(self, prep, args, callback, keep):
        """Prepare an SQE with prep(cring, user_data, *args); callback(res,
        flags) runs on its CQE; `keep` lives until then [U6].  Returns the
        user_data."""
        if self._closed:
            self._check_open()
        if not self._flush_scheduled and not self._draining:
            # First, so that a loop that is gone or closed leaves nothing behind.
            loop = self._loop_ref()
            if loop is None:
                raise RuntimeError("the Ring's event loop is gone")
            loop.call_soon(self._flush)
            self._flush_scheduled = True
        user_data = self._next_user_data
        self._next_user_data = user_data + 1
        entry = (callback, keep)
        if self._backlog:  # behind those already waiting, in order
            self._backlog[user_data] = (prep, args, entry)
        elif prep(self._cring, user_data, *args) == 0 or (
                self._enter_now() and prep(self._cring, user_data, *args) == 0):  # [U5]
            self._ops[user_data] = entry
        else:
            self._backlog[user_data] = (prep, args, entry)
        return user_data

    def _start_chain(self, steps):
        """Prepare SQEs that must reach the kernel together (a chain linked
        with IOSQE_IO_HARDLINK in their flags [U15]): each step is (prep,
        args, callback, keep).  Their user_data, or None when they cannot
        go now in one piece (the SQ lacks room, or a backlog waits): the
        caller then does them one at a time."""
        if self._closed:
            self._check_open()
        cring = self._cring
        if not self._room(len(steps)):
            return None
        if not self._flush_scheduled and not self._draining:
            loop = self._loop_ref()
            if loop is None:
                raise RuntimeError("the Ring's event loop is gone")
            loop.call_soon(self._flush)
            self._flush_scheduled = True
        user_datas = []
        for prep, args, callback, keep in steps:
            user_data = self._next_user_data
            self._next_user_data = user_data + 1
            if prep(cring, user_data, *args) < 0:  # pragma: no cover - room was checked
                raise RuntimeError("io_uring SQ full in the middle of a chain")
            self._ops[user_data] = (callback, keep)
            user_datas.append(user_data)
        return user_datas

    def _room(self, count):
        """Whether `count` SQEs can be prepared now, back to back (for a
        chain [U15]): no backlog, and room in the SQ, after submitting what
        it holds if need be."""
        if self._backlog:
            return False
        unsubmitted = lib.reactor_ring_unsubmitted
        if self._sq_entries - unsubmitted(self._cring) >= count:
            return True
        return self._enter_now() and self._sq_entries - unsubmitted(self._cring) >= count

    def _start_pair(self, prep, args, callback, prep2, args2, callback2, keep=None):
        """_start_chain() of two steps, the echo's send (whose memory `keep`
        holds [U6]) and the recv linked to it: False when they cannot go
        now."""
        if self._closed:
            self._check_open()
        if not self._room(2):
            return False
        if not self._flush_scheduled and not self._draining:
            loop = self._loop_ref()
            if loop is None:
                raise RuntimeError("the Ring's event loop is gone")
            loop.call_soon(self._flush)
            self._flush_scheduled = True
        user_data = self._next_user_data
        self._next_user_data = user_data + 2
        cring = self._cring
        if prep(cring, user_data, *args) < 0 or prep2(cring, user_data + 1, *args2) < 0:
            raise RuntimeError("io_uring SQ full in the middle of a chain")  # pragma: no cover
        ops = self._ops
        ops[user_data] = (callback, keep)
        ops[user_data + 1] = (callback2, None)
        return True

    def _free_slots(self):
        """The free direct-descriptor slots [U16] (a list to pop from and
        append to), the table registered on first use; None where the
        kernel has none (before 5.19)."""
        if self._slots is None and not self._slots_refused:
            if lib.reactor_ring_register_slots(self._cring, _SLOTS) < 0:
                self._slots_refused = True
            else:
                self._slots = list(range(_SLOTS))
        return self._slots

    def _enter_now(self):
        """Submit what the SQ holds; True if the kernel took something."""
        rc = lib.reactor_ring_enter(self._cring, 0, -1)
        if rc > 0:
            return True
        if rc in (0, -_EBUSY, -_EAGAIN, -_EINTR):
            return False
        raise _oserror(-rc)

    def _flush(self):
        """The once-per-iteration submission [U2]."""
        self._flush_scheduled = False
        if not self._closed:
            self._submit_and_reap()

    def _submit_and_reap(self):
        """Enter (submitting what is prepared), reap and dispatch; again, as
        long as the callbacks prepared more, up to _ROUNDS times [U2].
        Meanwhile _start() schedules no flush: the next round submits."""
        cring, submit_reap = self._cring, lib.reactor_ring_submit_reap
        ud_array, res_array, flags_array, size = (self._user_data, self._res, self._flags,
                                                  self._batch_size)
        self._draining = True
        try:
            if self._batch is not None:  # a tail left by a BaseException [U17]
                self._dispatch()
            for _ in range(_ROUNDS):
                mark = self._next_user_data  # moves when a callback prepares an SQE
                n = submit_reap(cring, ud_array, res_array, flags_array, size)
                if n < 0:
                    if n in (-_EBUSY, -_EAGAIN, -_EINTR):
                        break  # the kernel is short of room, or a signal: next time
                    raise _oserror(-n)  # to the loop's exception handler (EBADR [U4])
                if n:
                    self._batch = zip(_unpack(ud_array, n), _unpack(res_array, n),
                                      _unpack(flags_array, n))
                    self._dispatch()
                    if n == size:
                        self._reap()  # more than a batch waits
                if self._closed or self._next_user_data == mark:
                    break
        finally:
            self._draining = False
        if not self._closed and (self._backlog or lib.reactor_ring_unsubmitted(cring)):
            if self._backlog:
                self._submit_backlog()
            self._schedule_flush()

    def _schedule_flush(self):
        if not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True
            self._loop_ref().call_soon(self._flush)

    def submit(self) -> None:
        """Hand what was prepared to the kernel now, not at the end of this
        loop iteration."""
        self._check_open()
        self._enter_now()

    # -- completing ---------------------------------------------------------------

    def _on_eventfd(self):
        try:
            os.read(self._eventfd, 8)
        except BlockingIOError:
            pass  # drained by an earlier callback of this iteration
        if not self._closed:
            self._submit_and_reap()

    def _reap(self):
        cring, lib_reap = self._cring, lib.reactor_ring_reap
        ud_array, res_array, flags_array, size = (self._user_data, self._res, self._flags,
                                                  self._batch_size)
        while not self._closed:
            if self._batch is not None:  # a tail left by a BaseException [U17]
                self._dispatch()
                continue
            n = lib_reap(cring, ud_array, res_array, flags_array, size)
            if n <= 0:
                if n < 0 and n != -_EINTR:
                    raise _oserror(-n)  # EBADR: the kernel lost CQEs [U4]
                break
            self._batch = zip(_unpack(ud_array, n), _unpack(res_array, n),
                              _unpack(flags_array, n))
            self._dispatch()
            if n < size:
                break

    def _dispatch(self):
        """Run the callbacks of self._batch, the completions reaped [U17]."""
        ops, report = self._ops, self._driver.report
        batch = self._batch
        unknown = []
        try:
            for user_data, res, flags in batch:
                entry = ops.get(user_data) if flags & _MORE else ops.pop(user_data, None)
                if entry is None:
                    unknown.append(user_data)
                    continue
                try:
                    entry[0](res, flags)
                except Exception as exc:
                    report(exc, entry[0])
        except BaseException:
            # KeyboardInterrupt & co.: the rest of the batch stays in
            # self._batch for the next dispatch, which a flush makes [U17].
            self._schedule_flush()
            raise
        finally:
            if unknown:  # a bug here, not in the caller: say so
                report(RuntimeError(f"io_uring completions for unknown operations "
                                    f"(user_data {unknown})"), self._dispatch)
        if self._batch is batch:
            self._batch = None

    def _submit_backlog(self):
        backlog, cring, ops = self._backlog, self._cring, self._ops
        while backlog:
            user_data = next(iter(backlog))
            prep, args, entry = backlog[user_data]
            if prep(cring, user_data, *args) < 0:
                if not self._enter_now():
                    break  # still no room: after the next completions
                continue
            del backlog[user_data]
            ops[user_data] = entry
        self._schedule_flush()

    # -- cancelling ------------------------------------------------------------------

    def _cancel(self, user_data, flags=0):
        """Cancel by user_data [U7]; False if the operation is not pending."""
        if self._closed:
            return False
        backlog_entry = self._backlog.pop(user_data, None)
        if backlog_entry is not None:  # never reached the kernel
            self._loop_ref().call_soon(backlog_entry[2][0], -_ECANCELED, 0)
            return True
        if user_data not in self._ops:
            return False
        self._start(lib.reactor_ring_prep_cancel, (user_data, flags), _cancel_done, None)
        return True

    def _orphan(self, user_data, callback=None):
        """Nobody waits for this operation any more: keep its buffers until
        the kernel is done with them [U6]; replace its callback (and
        whatever that held, such as an asyncio loop) with `callback`, if
        any (an open's, which must close the fd it may still produce)."""
        entry = self._ops.get(user_data)
        if entry is not None:
            self._ops[user_data] = (callback or _ignore, entry[1])
        elif user_data in self._backlog:
            del self._backlog[user_data]

    def cancel(self, op: Operation) -> bool:
        """Same as op.cancel()."""
        if op._ring is not self:
            raise ValueError("the operation belongs to another Ring")
        return op.cancel()

    # -- operations ----------------------------------------------------------------

    def _op(self, callback, convert, prep, args, keep):
        _check_callable(callback)
        op = Operation(self, callback, convert)
        op._user_data = self._start(prep, args, op._complete, keep)
        return op

    def nop(self, callback: Callable[[Operation], Any]) -> Operation:
        """An operation that does nothing: result() is None."""
        return self._op(callback, _none, lib.reactor_ring_prep,
                        (lib.IORING_OP_NOP, -1, ffi.NULL, 0, 0, 0), None)

    def read(self, fd: FileDescriptorLike, size: int, offset: int,
             callback: Callable[[Operation], Any]) -> Operation:
        """pread(fd, size, offset) (offset -1: at the file's position, which
        moves): result() is the bytes read."""
        fd, size, offset = _fd(fd), _size(size), _offset(offset)
        buf = _new_buffer("char[]", max(size, 1))
        return self._op(callback, lambda res, flags: ffi.unpack(buf, res),
                        lib.reactor_ring_prep, (lib.IORING_OP_READ, fd, buf, size, offset, 0),
                        buf)

    def readinto(self, fd: FileDescriptorLike, buffer: Any, offset: int,
                 callback: Callable[[Operation], Any]) -> Operation:
        """preadv into a writable buffer: result() is the number of bytes read."""
        fd, offset = _fd(fd), _offset(offset)
        view, length = _writable_buffer(buffer)
        if length > _INT_MAX:
            raise ValueError("buffer is larger than 2 GiB")
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_READ, fd, view, length, offset, 0), view)

    def readv(self, fd: FileDescriptorLike, buffers: Sequence[Any], offset: int,
              callback: Callable[[Operation], Any]) -> Operation:
        """preadv(fd, buffers, offset): result() is the number of bytes read."""
        fd, offset = _fd(fd), _offset(offset)
        iov, count, keep = _iovecs(buffers, writable=True)
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_READV, fd, iov, count, offset, 0), keep)

    def write(self, fd: FileDescriptorLike, data: Any, offset: int,
              callback: Callable[[Operation], Any]) -> Operation:
        """pwrite(fd, data, offset) (offset -1: at the file's position):
        result() is the number of bytes written."""
        fd, offset = _fd(fd), _offset(offset)
        view, length = _readable_buffer(data)
        if length > _INT_MAX:
            raise ValueError("data is larger than 2 GiB")
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_WRITE, fd, view, length, offset, 0), view)

    def writev(self, fd: FileDescriptorLike, buffers: Sequence[Any], offset: int,
               callback: Callable[[Operation], Any]) -> Operation:
        """pwritev(fd, buffers, offset): result() is the number of bytes written."""
        fd, offset = _fd(fd), _offset(offset)
        iov, count, keep = _iovecs(buffers, writable=False)
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_WRITEV, fd, iov, count, offset, 0), keep)

    def openat(self, path: Union[str, bytes, os.PathLike], flags: int, mode: int,
               callback: Callable[[Operation], Any], *, dir_fd: Optional[int] = None) -> Operation:
        """os.open(path, flags, mode, dir_fd=dir_fd) (O_CLOEXEC is added, as
        Python makes every fd): result() is the new fd, which the caller owns."""
        cpath = _path(path)
        if not isinstance(flags, int) or not isinstance(mode, int):
            raise TypeError("flags and mode must be ints")
        if not 0 <= flags <= _INT_MAX or not 0 <= mode <= 0o7777:
            raise ValueError(f"invalid flags {flags:#x} or mode {mode:#o}")
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_OPENAT, _dir_fd(dir_fd), cpath, mode, 0,
                         flags | os.O_CLOEXEC), cpath)

    def close_fd(self, fd: FileDescriptorLike, callback: Callable[[Operation], Any]) -> Operation:
        """close(fd) in the kernel's order of operations: result() is None."""
        return self._op(callback, _none, lib.reactor_ring_prep,
                        (lib.IORING_OP_CLOSE, _fd(fd), ffi.NULL, 0, 0, 0), None)

    def statx(self, path: Union[str, bytes, os.PathLike, int], callback: Callable[[Operation], Any],
              *, dir_fd: Optional[int] = None, follow_symlinks: bool = True) -> Operation:
        """os.stat(path) (an int path: that fd, as os.stat accepts):
        result() is a StatxResult."""
        if isinstance(path, int):
            dirfd, cpath, flags = _fd(path), ffi.new("char[]", b""), lib.AT_EMPTY_PATH
        else:
            dirfd, cpath = _dir_fd(dir_fd), _path(path)
            flags = 0 if follow_symlinks else lib.AT_SYMLINK_NOFOLLOW
        stx = ffi.new("struct statx *")
        return self._op(callback, lambda res, fl: StatxResult(stx), lib.reactor_ring_prep_ext,
                        (lib.IORING_OP_STATX, dirfd, cpath,
                         lib.STATX_BASIC_STATS | lib.STATX_BTIME, 0, flags, stx, 0, 0, 0),
                        (cpath, stx))

    def fsync(self, fd: FileDescriptorLike, callback: Callable[[Operation], Any], *,
              datasync: bool = False) -> Operation:
        """fsync(fd) (fdatasync with datasync=True): result() is None."""
        return self._op(callback, _none, lib.reactor_ring_prep,
                        (lib.IORING_OP_FSYNC, _fd(fd), ffi.NULL, 0, 0,
                         lib.IORING_FSYNC_DATASYNC if datasync else 0), None)

    def ftruncate(self, fd: FileDescriptorLike, length: int,
                  callback: Callable[[Operation], Any]) -> Operation:
        """ftruncate(fd, length) (IORING_OP_FTRUNCATE, Linux 6.9: check
        "FTRUNCATE" in ring.supported_ops): result() is None."""
        if not isinstance(length, int):
            raise TypeError(f"length must be an int, not {type(length).__name__}")
        if not 0 <= length <= _INT64_MAX:
            raise ValueError(f"length must be in 0 ... {_INT64_MAX}, not {length}")
        return self._op(callback, _none, lib.reactor_ring_prep,
                        (lib.IORING_OP_FTRUNCATE, _fd(fd), ffi.NULL, 0, length, 0), None)

    def recv(self, sock: FileDescriptorLike, size: int, callback: Callable[[Operation], Any],
             flags: int = 0) -> Operation:
        """sock.recv(size, flags): result() is the bytes received (b"" at EOF)."""
        fd, size = _fd(sock), _size(size)
        buf = _new_buffer("char[]", max(size, 1))
        return self._op(callback, lambda res, fl: ffi.unpack(buf, res),
                        lib.reactor_ring_prep,
                        (lib.IORING_OP_RECV, fd, buf, size, 0, _msg_flags(flags)), buf)

    def recv_into(self, sock: FileDescriptorLike, buffer: Any,
                  callback: Callable[[Operation], Any], flags: int = 0) -> Operation:
        """sock.recv_into(buffer, 0, flags): result() is the number of bytes."""
        fd = _fd(sock)
        view, length = _writable_buffer(buffer)
        if length > _INT_MAX:
            raise ValueError("buffer is larger than 2 GiB")
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_RECV, fd, view, length, 0, _msg_flags(flags)), view)

    def send(self, sock: FileDescriptorLike, data: Any, callback: Callable[[Operation], Any],
             flags: int = 0) -> Operation:
        """sock.send(data, flags): result() is the number of bytes sent
        (possibly fewer than len(data), as send(2))."""
        fd = _fd(sock)
        view, length = _readable_buffer(data)
        if length > _INT_MAX:
            raise ValueError("data is larger than 2 GiB")
        return self._op(callback, _int, lib.reactor_ring_prep,
                        (lib.IORING_OP_SEND, fd, view, length, 0,
                         _msg_flags(flags) | socket.MSG_NOSIGNAL), view)

    def accept(self, sock: FileDescriptorLike, callback: Callable[[Operation], Any], *,
               multishot: bool = False) -> Operation:
        """accept4(sock, SOCK_CLOEXEC): result() is the new connection's fd,
        which the caller owns.  multishot=True keeps accepting, one callback
        per connection, until cancelled [U13]."""
        fd = _fd(sock)
        if multishot:
            return self._accept_multishot(fd, callback)
        return self._op(callback, _int, lib.reactor_ring_prep_ext,
                        (lib.IORING_OP_ACCEPT, fd, ffi.NULL, 0, 0, lib.SOCK_CLOEXEC,
                         ffi.NULL, 0, 0, 0), None)

    def _accept_multishot(self, fd, callback):
        _check_callable(callback)
        op = Operation(self, callback, _int)
        _MultishotAccept(self, fd, op).arm()
        return op

    def connect(self, sock: Union[socket.socket, int], address: Any,
                callback: Callable[[Operation], Any]) -> Operation:
        """sock.connect(address) for AF_INET (host, port), AF_INET6 (host,
        port[, flowinfo, scope_id]) with numeric hosts, and AF_UNIX paths:
        result() is None."""
        fd = _fd(sock)
        family = sock.family if isinstance(sock, socket.socket) else _family_of(fd)
        storage = ffi.new("struct sockaddr_storage *")
        length = _sockaddr(storage, family, address)
        return self._op(callback, _none, lib.reactor_ring_prep,
                        (lib.IORING_OP_CONNECT, fd, storage, 0, length, 0), storage)

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

        op._user_data = self._start(lib.reactor_ring_prep,
                                    (lib.IORING_OP_TIMEOUT, -1, ts, 1, 0, 0), expired, ts)
        return op

    # -- closing -----------------------------------------------------------------

    def close(self) -> None:
        """Cancel every operation, wait for the kernel to finish them [U8]
        (their callbacks run here, with ECANCELED or their real results),
        then release the ring and its eventfd."""
        if self._closed:
            if self._forked and self._eventfd >= 0:  # [U9] the child's fds
                self._driver.unwatch(self._eventfd)
                os.close(self._eventfd)
                self._eventfd = -1
            return
        self._closed = True
        _live_rings.discard(self)
        try:
            self._cancel_all_and_wait()
        finally:
            self._release()

    def _cancel_all_and_wait(self):
        report = self._driver.report
        # Completions already reaped, not yet dispatched (close() called from
        # one of their callbacks): theirs first.
        if self._batch is not None:
            self._dispatch()
        backlog, self._backlog = self._backlog, {}
        for _prep, _args, entry in backlog.values():  # never reached the kernel
            try:
                entry[0](-_ECANCELED, 0)
            except Exception as exc:
                report(exc, entry[0])
        if not self._ops:
            return
        if not (self._cancel_any and self._prep_closing(
                lib.reactor_ring_prep_cancel,
                (0, lib.IORING_ASYNC_CANCEL_ANY | lib.IORING_ASYNC_CANCEL_ALL),
                self._cancel_all_done)):
            self._cancel_each()
        cring = self._cring
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while any(entry[0] is not _cancel_done for entry in self._ops.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            rc = lib.reactor_ring_enter(cring, 1, int(left * 1e9))
            if rc < 0 and rc not in (-_EINTR, -errno.ETIME, -_EBUSY, -_EAGAIN):
                report(_oserror(-rc), self.close)
                break
            n = lib.reactor_ring_reap(cring, self._user_data, self._res, self._flags,
                                      self._batch_size)
            if n > 0:
                self._batch = zip(_unpack(self._user_data, n), _unpack(self._res, n),
                                  _unpack(self._flags, n))
                self._dispatch()
        self._batch = None
        for user_data, entry in list(self._ops.items()):
            if entry[0] is _cancel_done:
                del self._ops[user_data]  # cancels own no buffer
        if self._ops:
            _abandoned.append(self._ops)
            self._ops = {}
            warnings.warn(f"{self!r}: {len(_abandoned[-1])} operations were still running "
                          f"{CLOSE_TIMEOUT} s after close() cancelled them; their buffers "
                          "are kept for the life of the process", RuntimeWarning,
                          stacklevel=3)

    def _prep_closing(self, prep, args, callback):
        """Prepare an SQE while closing (no flush: close() enters itself)."""
        user_data = self._next_user_data
        self._next_user_data = user_data + 1
        while prep(self._cring, user_data, *args) < 0:
            if lib.reactor_ring_enter(self._cring, 0, -1) <= 0:
                return False  # the kernel takes nothing: close() will time out
        self._ops[user_data] = (callback, None)
        return True

    def _cancel_each(self):
        """One IORING_OP_ASYNC_CANCEL per operation (before 5.19, which
        brought IORING_ASYNC_CANCEL_ANY)."""
        for user_data, entry in list(self._ops.items()):
            if entry[0] is not _cancel_done and entry[0] is not self._cancel_all_done:
                if not self._prep_closing(lib.reactor_ring_prep_cancel, (user_data, 0),
                                          _cancel_done):
                    return

    def _cancel_all_done(self, res, flags):
        if res == -errno.EINVAL:  # no IORING_ASYNC_CANCEL_ANY: before 5.19
            self._cancel_any = False
            self._cancel_each()

    def _release(self):
        if self._eventfd >= 0:
            self._driver.unwatch(self._eventfd)
            os.close(self._eventfd)
            self._eventfd = -1
        lib.reactor_ring_close(self._cring)
        self._flush_scheduled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_closed", True):
            if getattr(self, "_forked", False) and self._eventfd >= 0:
                os.close(self._eventfd)
                self._eventfd = -1
            return
        implicit = self._implicit
        try:
            self.close()
        finally:
            if not implicit:
                _warn(f"unclosed Ring {self!r}", ResourceWarning, source=self)

    def _after_fork_in_child(self):
        """[U9]"""
        if self._closed:
            return
        self._closed = self._forked = True
        lib.reactor_ring_forget(self._cring)
        self._ops = {}
        self._backlog = {}
        self._batch = None
        fresh = lib.reactor_eventfd(0, lib.EFD_CLOEXEC | lib.EFD_NONBLOCK)
        if fresh >= 0:
            os.dup2(fresh, self._eventfd, inheritable=False)
            os.close(fresh)
        else:  # out of fds: better no eventfd than the parent's
            os.close(self._eventfd)
            self._eventfd = -1


class BufferRing:
    """`count` buffers of `size` bytes that the kernel picks from when a
    recv() of this group completes (IORING_REGISTER_PBUF_RING, 5.19)
    [U12], so memory follows the data in flight, not the number of
    connections waiting.

    ``recv(sock, callback)``'s result() is ``(buffer_id, nbytes)``: the
    data is ``view(buffer_id, nbytes)``, until ``give_back(buffer_id)``
    returns the buffer to the kernel (every buffer taken must be given
    back).  At EOF the result is ``(None, 0)``.  When data came and every
    buffer was taken it raises OSError(ENOBUFS) [U12].  OSError(EINVAL)
    from the constructor: the kernel has no buffer rings (before 5.19).
    """

    def __init__(self, ring: Ring, count: int = 256, size: int = 65536, group: int = 0) -> None:
        self._ring = None
        ring._check_open()
        count, size = _size(count, "count"), _size(size, "size")
        if not 1 <= count <= 32768 or count & (count - 1):
            raise ValueError(f"count must be a power of two in 1 ... 32768, not {count}")
        if not 1 <= size or count * size > 1 << 32:
            raise ValueError("size must be >= 1 and count * size at most 4 GiB")
        if not isinstance(group, int) or not 0 <= group <= 0xFFFF:
            raise ValueError(f"group must be in 0 ... 65535, not {group!r}")
        entry = ffi.sizeof("struct io_uring_buf")
        # Anonymous mmaps: page-aligned, as the kernel requires of the
        # entries, and ours (Python's) for as long as anything refers to
        # them; the kernel pins the pages while registered [U6].
        self._entries_map = mmap.mmap(-1, max(count * entry, mmap.PAGESIZE))
        self._pool_map = mmap.mmap(-1, count * size)
        self._entries = ffi.from_buffer(self._entries_map)
        self._pool = ffi.from_buffer(self._pool_map)
        self._view = memoryview(self._pool_map)
        self._count, self._size, self._group = count, size, group
        self._ids = ffi.new("uint16_t[]", count)
        self._held = bytearray(count)  # 1: picked by a recv, not given back yet
        rc = lib.reactor_pbuf_register(ring._cring, self._entries, count, group)
        if rc < 0:
            raise _oserror(-rc)
        self._ring = ring
        for buffer_id in range(count):
            self._ids[buffer_id] = buffer_id
        lib.reactor_pbuf_give(self._entries, count, self._pool, size, self._ids, count)
        self.taken = 0  # buffers handed out and not given back

    @property
    def size(self) -> int:
        return self._size

    @property
    def count(self) -> int:
        return self._count

    def recv(self, sock: FileDescriptorLike, callback: Callable[[Operation], Any],
             flags: int = 0, *, poll_first: bool = True) -> Operation:
        """A recv whose buffer the kernel picks from this group when data
        comes: result() is (buffer_id, nbytes), or (None, 0) at EOF.  With
        poll_first (the default) it waits for data before it picks, so that
        ENOBUFS means "data came, no buffer free"; without, a recv whose data
        is already there costs no poll, and one made while the pool is empty
        fails with ENOBUFS at once [U12]."""
        ring = self._ring
        if ring is None:
            raise RuntimeError("the BufferRing is closed")
        return ring._op(callback, self._picked, lib.reactor_ring_prep_ext,
                        (lib.IORING_OP_RECV, _fd(sock), ffi.NULL, 0, 0, _msg_flags(flags),
                         ffi.NULL, lib.IORING_RECVSEND_POLL_FIRST if poll_first else 0,
                         lib.IOSQE_BUFFER_SELECT, self._group), self)

    def _picked(self, res, flags):
        if flags & lib.IORING_CQE_F_BUFFER:
            buffer_id = flags >> lib.IORING_CQE_BUFFER_SHIFT
            self._take(buffer_id)
            return buffer_id, res
        return None, res

    def _take(self, buffer_id):
        """A CQE says the kernel picked `buffer_id` (IORING_CQE_F_BUFFER):
        it is the caller's until give_back()."""
        self._held[buffer_id] = 1
        self.taken += 1

    def view(self, buffer_id: int, nbytes: int) -> memoryview:
        """The first `nbytes` of buffer `buffer_id` (no copy)."""
        start = buffer_id * self._size
        return self._view[start:start + nbytes]

    def give_back(self, buffer_id: int) -> None:
        """Return a buffer the kernel picked to the kernel; ValueError for
        one that is not out (given back twice, it would be handed to two
        receives at once)."""
        if not isinstance(buffer_id, int) or not 0 <= buffer_id < self._count:
            raise ValueError(f"no buffer {buffer_id!r} in this group")
        if not self._held[buffer_id]:
            raise ValueError(f"buffer {buffer_id} is not taken (given back twice?)")
        self._held[buffer_id] = 0
        self.taken -= 1
        if self._ring is not None and not self._ring._closed:
            ids = self._ids
            ids[0] = buffer_id
            lib.reactor_pbuf_give(self._entries, self._count, self._pool, self._size, ids, 1)

    def close(self) -> None:
        """Unregister the group (its memory goes when nothing refers to it)."""
        ring, self._ring = self._ring, None
        if ring is not None and not ring._closed:
            rc = lib.reactor_pbuf_unregister(ring._cring, self._group)
            if rc < 0:
                raise _oserror(-rc)


def _after_fork_in_child():
    for ring in list(_live_rings):
        ring._after_fork_in_child()
    _live_rings.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
                2 if family == socket.AF_INET else 4):
            raise TypeError(f"address must be a (host, port) tuple, not {address!r}")
        host, port = address[0], address[1]
        flowinfo = address[2] if len(address) > 2 else 0
        scope_id = address[3] if len(address) > 3 else 0
        if not isinstance(host, str) or not isinstance(port, int):
            raise TypeError(f"address must be a (str, int) tuple, not {address!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0 ... 65535, not {port}")
        if not (isinstance(flowinfo, int) and 0 <= flowinfo <= _UINT32_MAX and
                isinstance(scope_id, int) and 0 <= scope_id <= _UINT32_MAX):
            raise ValueError(f"invalid flowinfo or scope_id in {address!r}")
        try:
            packed = socket.inet_pton(family, host)
        except OSError:
            raise ValueError(f"{host!r} is not a numeric address (no name lookups here)") \
                from None
        rc = lib.reactor_sockaddr_inet(storage, family, packed, port, flowinfo, scope_id)
    else:
        raise ValueError(f"unsupported address family {family!r}")
    if rc < 0:
        raise _oserror(-rc)
    return rc
