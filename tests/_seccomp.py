"""A real io_uring refusal for tests: a seccomp filter making
io_uring_setup() fail with a chosen errno, as a container's profile does.

``refuse_io_uring(errno.EPERM)`` installs it in the calling process (for
good: run it in a child).  The filter is the smallest classic-BPF program:
load the syscall number, compare, return ERRNO(err) or ALLOW.  The numbers
below are the kernel's ABI (linux/filter.h, linux/seccomp.h, prctl.h); the
syscall's number comes from reactor._native, which gets it from the headers.
"""

import ctypes
import ctypes.util

from reactor._native import lib

# classic BPF (linux/filter.h)
_BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_RET_K = 0x06  # BPF_RET | BPF_K
# linux/seccomp.h, linux/prctl.h
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_MODE_FILTER = 2
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def refuse_io_uring(err):
    """From now on io_uring_setup() fails with -err in this process."""
    program = (_SockFilter * 4)(
        _SockFilter(_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr is at offset 0
        _SockFilter(_BPF_JEQ_K, 0, 1, lib.REACTOR_NR_IO_URING_SETUP),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | err),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
    )
    fprog = _SockFprog(len(program), program)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
