"""Smoke tests of the cffi binding itself (reactor._native)."""

import select

import pytest

import reactor
from reactor import _native


def test_binding_exposes_ffi_and_lib():
    assert hasattr(_native, "ffi")
    assert hasattr(_native, "lib")
    # A real cffi API-mode module, not a Python stand-in.
    assert type(_native.ffi).__module__.startswith(("_cffi_backend", "cffi"))
    assert _native.__file__.endswith(".so")


@pytest.mark.parametrize(
    "name",
    [
        "EPOLLIN",
        "EPOLLOUT",
        "EPOLLPRI",
        "EPOLLERR",
        "EPOLLHUP",
        "EPOLLRDHUP",
        "EPOLLET",
        "EPOLLONESHOT",
        "EPOLLEXCLUSIVE",
        "POLLIN",
        "POLLOUT",
        "POLLPRI",
        "POLLERR",
        "POLLHUP",
        "POLLNVAL",
    ],
)
def test_native_constants_match_select_module(name):
    assert getattr(_native.lib, name) == getattr(select, name)


@pytest.mark.parametrize(
    "name", ["EPOLLET", "EPOLLONESHOT", "EPOLLEXCLUSIVE", "EPOLLRDHUP", "EPOLLPRI"]
)
def test_public_epoll_flags_match_select_module(name):
    value = getattr(reactor, name)
    assert type(value) is int
    assert value == getattr(select, name)


def test_epoll_event_struct_is_packed_like_the_kernels():
    # x86-64 packs struct epoll_event to 12 bytes; other ABIs use 16.
    import platform

    size = _native.ffi.sizeof("struct epoll_event")
    if platform.machine() in ("x86_64", "amd64"):
        assert size == 12
    else:
        assert size in (12, 16)
    assert _native.ffi.sizeof("struct pollfd") == 8


def test_every_struct_layout_in_cdef_comes_from_the_compiler():
    # README: "every constant and struct layout filled in by the compiler";
    # struct pollfd was spelled out in full (a layout cffi took on trust).
    import pathlib
    import re

    cdef = (pathlib.Path(__file__).resolve().parent.parent / "_native" / "cdef.h").read_text()
    cdef = re.sub(r"/\*.*?\*/", "", cdef, flags=re.S)
    bodies = re.findall(r"struct\s+(\w+)\s*\{(.*?)\}\s*;", cdef, flags=re.S)
    assert bodies
    spelled_out = [name for name, body in bodies if "...;" not in body]
    assert not spelled_out, f"structs whose layout cdef.h fixes by hand: {spelled_out}"
    constants = re.findall(r"#define\s+(\w+)\s+(\S+)", cdef)
    assert all(value == "..." for _, value in constants), constants


def test_signalfd_helpers_read_a_blocked_signal_and_report_errors():
    # _native/signals.c, which otherwise only the signal-driven model (a
    # long test) reaches: a blocked, raised signal is read back with its
    # number; an empty non-blocking signalfd is -EAGAIN; a signal number the
    # libc refuses and a batch of 0 are -EINVAL.
    import errno
    import os
    import signal
    import threading

    lib, ffi = _native.lib, _native.ffi
    assert lib.reactor_signalfd(-1, ffi.new("int[]", [0]), 1, 0) == -errno.EINVAL
    wanted = ffi.new("int[]", [signal.SIGUSR2])
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    fd = lib.reactor_signalfd(-1, wanted, 1, lib.SFD_CLOEXEC | lib.SFD_NONBLOCK)
    assert fd >= 0
    try:
        records = ffi.new("struct signalfd_siginfo[]", 4)
        signo, fds = ffi.new("uint32_t[]", 4), ffi.new("int32_t[]", 4)
        assert lib.reactor_signalfd_read(fd, records, 4, signo, fds) == -errno.EAGAIN
        assert lib.reactor_signalfd_read(fd, records, 0, signo, fds) == -errno.EINVAL
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
        assert lib.reactor_signalfd_read(fd, records, 4, signo, fds) == 1
        assert (signo[0], fds[0]) == (signal.SIGUSR2, 0)
    finally:
        os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
