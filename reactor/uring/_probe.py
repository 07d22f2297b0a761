"""Whether io_uring works here, and in words why not [U10, U11].

``uring_available()`` sets up a tiny ring once per process and answers with
a ``UringAvailability``: truthy when io_uring works and the kernel has what
reactor needs (Linux 5.11 or later), falsy with ``.reason`` (and ``.errno``
when the kernel refused) when not.  ``_setup`` is the one io_uring_setup()
call every ring makes, with the best flags this kernel accepts [U10];
``_probe`` reads a set-up ring's operations and features by name.

The kernel facts [U*] the code points to are in docs/io_uring.md.
"""

from __future__ import annotations

import errno
import os

from .._native import ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["uring_available", "UringAvailability"]

_strerror = os.strerror

# Operations every ring needs; a kernel lacking one counts as "no io_uring".
_REQUIRED_OPS = (
    "NOP",
    "READ",
    "WRITE",
    "READV",
    "WRITEV",
    "OPENAT",
    "CLOSE",
    "STATX",
    "FSYNC",
    "ASYNC_CANCEL",
    "TIMEOUT",
    "SEND",
    "RECV",
    "ACCEPT",
    "CONNECT",
)
_REQUIRED_FEATURES = ("SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS", "EXT_ARG")
_OP_NAMES = (
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "TIMEOUT",
    "ACCEPT",
    "ASYNC_CANCEL",
    "CONNECT",
    "OPENAT",
    "CLOSE",
    "STATX",
    "READ",
    "WRITE",
    "SEND",
    "RECV",
    "SHUTDOWN",
    "SOCKET",
    "FTRUNCATE",
)
_FEATURE_NAMES = (
    "SINGLE_MMAP",
    "NODROP",
    "SUBMIT_STABLE",
    "RW_CUR_POS",
    "FAST_POLL",
    "EXT_ARG",
    "NATIVE_WORKERS",
    "CQE_SKIP",
    "LINKED_FILE",
    "REG_REG_RING",
    "RECVSEND_BUNDLE",
    "MIN_TIMEOUT",
)

# [U10], most wanted first.
_SETUP_FLAG_SETS = (
    lib.IORING_SETUP_NO_SQARRAY
    | lib.IORING_SETUP_SUBMIT_ALL
    | lib.IORING_SETUP_COOP_TASKRUN
    | lib.IORING_SETUP_TASKRUN_FLAG,
    lib.IORING_SETUP_SUBMIT_ALL | lib.IORING_SETUP_COOP_TASKRUN | lib.IORING_SETUP_TASKRUN_FLAG,
    lib.IORING_SETUP_SUBMIT_ALL,
    0,
)
_setup_flags_start = 0  # index of the first set this kernel may accept


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

    def __init__(
        self,
        available: bool,
        reason: str,
        err: Optional[int] = None,
        ops: frozenset = frozenset(),
        features: frozenset = frozenset(),
    ) -> None:
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
            why = "kernel.io_uring_disabled = 1 and this process is not in kernel.io_uring_group"
        else:
            why = "kernel.io_uring_disabled allows it, so a seccomp filter: a container's profile?"
        return f"io_uring_setup() refused: {name} ({why})"
    if err == errno.ENOSYS:
        return (
            f"io_uring_setup() refused: {name} (a kernel without io_uring: before 5.1, "
            "CONFIG_IO_URING off, or a seccomp filter)"
        )
    return f"io_uring_setup() failed: {name} ({_strerror(err)})"


def _probe(cring):
    """(ops, features) of a set-up ring, by name."""
    supported = ffi.new("uint8_t[]", lib.REACTOR_RING_PROBE_OPS)
    ops = set()
    if lib.reactor_ring_probe(cring, supported, lib.REACTOR_RING_PROBE_OPS) >= 0:
        ops = {name for name in _OP_NAMES if supported[getattr(lib, "IORING_OP_" + name)]}
    features = {
        name for name in _FEATURE_NAMES if cring.features & getattr(lib, "IORING_FEAT_" + name)
    }
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
        return UringAvailability(
            False,
            "the kernel lacks " + ", ".join(missing) + " (reactor needs Linux 5.11 or later)",
            None,
            ops,
            features,
        )
    return UringAvailability(
        True, f"io_uring available (setup flags {cring.setup_flags:#x})", None, ops, features
    )


# -- results ---------------------------------------------------------------------
