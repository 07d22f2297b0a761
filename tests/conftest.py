"""Shared fixtures for the reactor test suite.

Every contract test runs once per backend (epoll, poll, select), and every
test that registers a file object runs once with the socket object itself and
once with its bare ``fileno()`` (the two ways callers hand file objects to a
selector).  Each backend fixture pairs reactor's class with the stdlib class of
the *same* backend: the stdlib of the running Python is the oracle for every
drop-in behaviour.
"""

import gc
import os
import resource
import socket

import pytest

from _support import BACKENDS


BACKEND_IDS = [b.name for b in BACKENDS]


@pytest.fixture(params=BACKENDS, ids=BACKEND_IDS)
def backend(request):
    return request.param


@pytest.fixture
def sel(backend):
    """A reactor selector of the current backend, closed after the test."""
    s = backend.ours()
    yield s
    s.close()


@pytest.fixture
def stdsel(backend):
    """The stdlib selector of the current backend, closed after the test."""
    s = backend.stdlib()
    yield s
    s.close()


class FilenoOnly:
    """A minimal file object: anything with a fileno() method."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def __repr__(self):
        return f"FilenoOnly({self.fd})"


@pytest.fixture(params=["object", "fileno"])
def as_fileobj(request):
    """Map a socket (or a raw fd) to what the test hands to the selector.

    "object": the socket object itself (raw fds are wrapped in FilenoOnly);
    "fileno": the bare integer file descriptor.
    """
    if request.param == "object":

        def convert(obj):
            return FilenoOnly(obj) if isinstance(obj, int) else obj

    else:

        def convert(obj):
            return obj if isinstance(obj, int) else obj.fileno()

    convert.kind = request.param
    return convert


@pytest.fixture
def socketpair():
    """A connected AF_UNIX stream pair, closed after the test."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def make_socketpair():
    """Factory for any number of socket pairs, all closed after the test."""
    made = []

    def make():
        a, b = socket.socketpair()
        made.extend((a, b))
        return a, b

    yield make
    for s in made:
        s.close()


def _open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leak():
    """Fail any test that leaves file descriptors open.

    Tests must close every socket and selector they create; an implementation
    that leaks an fd (on close(), on a failed register(), after fork...) is
    caught here.  Before failing, gc.collect() so that an object merely
    awaiting collection is not mistaken for a leak.
    """
    before = _open_fds()
    yield
    leaked = _open_fds() - before
    if leaked:
        gc.collect()
        leaked = _open_fds() - before
    details = {}
    for fd in leaked:
        try:
            details[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            details[fd] = "?"
    assert not leaked, f"file descriptors leaked by the test: {details}"


@pytest.fixture
def high_nofile():
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; restore after.

    Returns the new soft limit: no fd at or above it can be open.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        with open("/proc/sys/fs/nr_open") as fh:
            target = int(fh.read())
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    yield target
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
