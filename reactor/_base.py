"""What every reactor selector shares: key bookkeeping, the stdlib's error
contract, timeouts and the EINTR policy.

The contract is CPython's ``Lib/selectors.py``, kept observable detail for
detail (including its quirks, listed in the README) so that reactor's
selectors are a drop-in:

- ValueError for an invalid event mask or an object without a usable
  ``fileno()``; KeyError for a duplicate or a missing registration;
  OSError (with the syscall's errno) when the kernel refuses a registration.
- The kernel is asked first and our records change only after it agreed, so
  a failed syscall leaves nothing half-changed.
- ``get_map()`` is a live read-only mapping, ``None`` after ``close()``.
- Timeouts: ``None`` blocks, ``<= 0`` polls, a positive timeout waits at
  least that long, to the nanosecond (the stdlib rounds up to 1 ms).
- PEP 475: a wait interrupted by a signal runs the Python handler (if it
  raises, the exception propagates) and waits again for the time left.
"""

import errno
import math
import os
from collections.abc import Mapping
from typing import Any, List, Optional, Protocol, Tuple, Union
from selectors import EVENT_READ, EVENT_WRITE, BaseSelector, SelectorKey
from time import monotonic_ns

from ._native import ffi

_unpack = ffi.unpack

class HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = Union[int, HasFileno]

__all__ = ["EVENT_READ", "EVENT_WRITE", "FD_LIMIT", "INT_MAX", "FileDescriptorLike", "SelectorKey",
           "SelectorBase", "make_key"]

_VALID_EVENTS = EVENT_READ | EVENT_WRITE
_EINTR = errno.EINTR


def make_key(fileobj, fd, events, data, _new=tuple.__new__):
    """SelectorKey(fileobj, fd, events, data), without the Python-level
    __new__ and _replace of namedtuple, which cost more than a syscall."""
    return _new(SelectorKey, (fileobj, fd, events, data))

# poll() and epoll_wait() take an int of milliseconds; the stdlib refuses a
# timeout that does not fit (2147483.647 s) with OverflowError, and so do we,
# although epoll_pwait2 and ppoll could wait longer.
INT_MAX = 2**31 - 1
_MAX_MS_TIMEOUT_NS = INT_MAX * 1_000_000


def _read_nr_open():
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024 * 1024  # the kernel's default


# No fd can be open at or above fs.nr_open, the kernel's ceiling on
# RLIMIT_NOFILE: arrays indexed by fd never need to be longer.
FD_LIMIT = _read_nr_open()


def fileobj_to_fd(fileobj):
    """Return the file descriptor of a file object or an fd (the stdlib's rule)."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def oserror(err):
    """OSError for a negative errno returned by reactor._native (the subclass
    OSError picks for it, e.g. PermissionError for EPERM)."""
    return OSError(err, os.strerror(err))


class _SelectorMapping(Mapping):
    """Live, read-only mapping of file objects to selector keys."""

    __slots__ = ("_selector",)

    def __init__(self, selector):
        self._selector = selector

    def __len__(self):
        return len(self._selector._fd_to_key)

    def get(self, fileobj, default=None):
        fd = self._selector._fileobj_lookup(fileobj)
        return self._selector._fd_to_key.get(fd, default)

    def __getitem__(self, fileobj):
        fd = self._selector._fileobj_lookup(fileobj)
        key = self._selector._fd_to_key.get(fd)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return key

    def __iter__(self):
        return iter(self._selector._fd_to_key)


class SelectorBase(BaseSelector):
    """Bookkeeping shared by the backends.

    A backend provides ``_add(fd, events)`` and ``_remove(fd)`` (the kernel
    side of register/unregister; ``_add`` raises and records nothing when
    the kernel refuses), ``modify`` and ``select``.
    """

    # Set by each backend: the native wait and its state (see select()).
    _state: Any
    _ready_fds: Any
    _ready: Any
    _native_wait: Any

    def __init__(self) -> None:
        # fd -> SelectorKey: the one record of what is registered.
        self._fd_to_key: dict[int, SelectorKey] = {}
        self._map: Optional[_SelectorMapping] = _SelectorMapping(self)

    def _add(self, fd: int, events: int) -> None:
        raise NotImplementedError

    def _remove(self, fd: int) -> None:
        raise NotImplementedError

    def _fileobj_lookup(self, fileobj):
        """fd of `fileobj`; for an object that no longer has a valid fd
        (a closed socket), the fd it was registered with, found by identity,
        so that it can still be unregistered."""
        try:
            return fileobj_to_fd(fileobj)
        except ValueError:
            for key in self._fd_to_key.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def _new_key(self, fileobj, events, data):
        """The key `register` would record, after the stdlib's checks in the
        stdlib's order (events first, then the object, then duplicates)."""
        if (not events) or (events & ~_VALID_EVENTS):
            raise ValueError(f"Invalid events: {events!r}")
        fd = self._fd_of(fileobj)
        if fd in self._fd_to_key:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        return make_key(fileobj, fd, events, data)

    def _fd_of(self, fileobj):
        """_fileobj_lookup with the common cases (an int, or an object whose
        fileno() gives a valid one) first."""
        try:
            fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            fd = -1
        if fd < 0:
            fd = self._fileobj_lookup(fileobj)  # raises the stdlib's error
        return fd

    def _pop_key(self, fileobj):
        key = self._fd_to_key.pop(self._fd_of(fileobj), None)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return key

    def _get_key_for_modify(self, fileobj):
        key = self._fd_to_key.get(self._fd_of(fileobj))
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return key

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> SelectorKey:
        key = self._new_key(fileobj, events, data)
        self._add(key.fd, events)
        self._fd_to_key[key.fd] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> SelectorKey:
        key = self._pop_key(fileobj)
        self._remove(key.fd)
        return key

    def get_key(self, fileobj: FileDescriptorLike) -> SelectorKey:
        # The stdlib's, without its detour through the mapping and a second
        # exception: asyncio calls get_key() on every add/remove_reader.
        if self._map is None:
            raise RuntimeError("Selector is closed")
        if fileobj.__class__ is int and fileobj >= 0:
            key = self._fd_to_key.get(fileobj)  # asyncio passes fds
        else:
            key = self._fd_to_key.get(self._fd_of(fileobj))
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return key

    # None after close(), as the stdlib's (its stubs leave that out).
    def get_map(self) -> Optional[Mapping[FileDescriptorLike, SelectorKey]]:  # type: ignore[override]
        return self._map

    def close(self) -> None:
        self._fd_to_key.clear()
        self._map = None

    # select(): the backend's _native_wait(self._state, timeout_ns) writes
    # the fds it found to self._ready_fds and their readiness bits to
    # self._ready, and returns their number or -errno.
    _TIMEOUT_LIMIT_NS = _MAX_MS_TIMEOUT_NS

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        timeout_ns = -1 if timeout is None else self._timeout_ns(timeout)
        n = self._native_wait(self._state, timeout_ns)
        if n == 1:
            # The common case, without unpacking: one cdata read each.
            key = self._fd_to_key.get(self._ready_fds[0])
            return [] if key is None else [(key, self._ready[0] & key.events)]
        return self._collect(n, timeout_ns) if n else []

    def _wait(self, timeout_ns):
        return self._native_wait(self._state, timeout_ns)

    def _timeout_ns(self, timeout):
        """Nanoseconds to wait for a timeout that is not None: 0 for <= 0,
        else rounded up, failing as the stdlib does (ValueError for NaN,
        OverflowError past the backend's limit, TypeError for a non-number).
        Notes the deadline a wait interrupted by a signal resumes towards."""
        if timeout <= 0:
            return 0
        ns = math.ceil(timeout * 1e9)
        if ns > self._TIMEOUT_LIMIT_NS:
            raise OverflowError("timeout is too large")
        self._deadline_ns = monotonic_ns() + ns
        return ns

    def _collect(self, n, timeout_ns):
        """The (key, mask) list for a wait that returned n."""
        if n < 0:
            n = self._wait_failed(n, timeout_ns)
        get = self._fd_to_key.get
        ready = []
        for fd, mask in zip(_unpack(self._ready_fds, n), _unpack(self._ready, n)):
            key = get(fd)
            if key is not None:
                ready.append((key, mask & key.events))
        return ready

    def _wait_failed(self, result, timeout_ns):
        """PEP 475 for a wait that returned -errno.

        On EINTR, Python has run (or is about to run, at this call's
        boundary) the signal handler; if it raised, the exception has left
        select() already.  Otherwise wait again for the time left; when none
        is left, report nothing ready, as the stdlib does.
        """
        while result == -_EINTR:
            if timeout_ns > 0:
                timeout_ns = self._deadline_ns - monotonic_ns()
                if timeout_ns <= 0:
                    return 0
            result = self._wait(timeout_ns)
        if result < 0:
            raise oserror(-result)
        return result
