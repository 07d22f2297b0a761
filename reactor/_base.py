"""What every reactor selector shares: key bookkeeping, the stdlib's error
contract, timeouts and the EINTR policy.

The contract is CPython's ``Lib/selectors.py``, kept observable detail for
detail (including its quirks, listed in the README) so that reactor's
selectors are a drop-in:

- ValueError for an invalid event mask or an object without a usable
  ``fileno()``; KeyError for a duplicate or a missing registration;
  OSError (with the syscall's errno) when the kernel refuses a registration.
- A failed syscall leaves nothing changed: our records change only after
  the kernel agreed (or, where another thread must see them first, are
  undone when it refuses).
- ``get_map()`` is a live read-only mapping, ``None`` after ``close()``.
- Timeouts: ``None`` blocks, ``<= 0`` polls, a positive timeout waits at
  least that long, to the nanosecond (the stdlib rounds up to 1 ms).
- PEP 475: a wait interrupted by a signal runs the Python handler (if it
  raises, the exception propagates) and waits again for the time left.

Threads (README, "Threads"): another thread may register, modify and
unregister while one waits, and may close the selector; reactor._native
keeps the kernel away from memory that changes under it (see "sharing with
other threads" in _native/helpers.c).  A wait's buffers (its state) serve
one select() at a time: a second one, in another thread or in a signal
handler that runs while the first holds them, waits with a spare state
(poll refuses, as the stdlib's does).  A state a select() holds when an
exception leaves it (a signal handler raising as the wait is interrupted)
is released on the way out.
"""

from __future__ import annotations

import errno
import math
import os
import weakref
from collections.abc import Mapping
import selectors
from selectors import EVENT_READ, EVENT_WRITE, BaseSelector, SelectorKey
from time import monotonic_ns

from ._native import ffi, lib

_unpack = ffi.unpack
_EGROW, _EBUSY, _ESTALE = lib.REACTOR_EGROW, lib.REACTOR_EBUSY, lib.REACTOR_ESTALE
# A wait's result >= _ONE is the code of the one fd ready: _ONE + ((fd << 2)
# | bits) for poll and select, a registration's code for epoll (helpers.c).
_ONE = lib.REACTOR_ONE
_addressof = ffi.addressof
_release_owner = lib.reactor_release


def release(state):
    """Free a wait state if this thread holds it (helpers.c): for a select()
    that an exception leaves while its wait kept the state."""
    _release_owner(_addressof(state, "owner"))


# A wait state -> the arrays its pointers point into, alive as long as it is.
_arrays_of: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def keep_alive(state, **arrays):
    """Keep `arrays` alive as long as the wait state `state` (a cdata struct
    whose pointer fields point into them), each in place of the array kept
    under its name before."""
    kept = _arrays_of.get(state)
    if kept is None:
        _arrays_of[state] = arrays
    else:
        kept.update(arrays)


# typing costs ~2 ms at import, more than the selectors module itself: it is
# imported for type checkers only (which treat TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Protocol, Tuple, Union

    class HasFileno(Protocol):
        def fileno(self) -> int: ...

    FileDescriptorLike = Union[int, HasFileno]

__all__ = [
    "EVENT_READ",
    "EVENT_WRITE",
    "FD_LIMIT",
    "INT_MAX",
    "FileDescriptorLike",
    "SelectorKey",
    "SelectorBase",
    "keep_alive",
    "make_key",
    "release",
]

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


# The stdlib's get_map().get(): Mapping.get, which turns any KeyError (one
# from a fileno() too) into the default, up to Python 3.12; its own method,
# which lets that KeyError through, from 3.13.  (A private class, not in
# the type stubs.)
_MAPPING_GET_CATCHES = "get" not in vars(selectors._SelectorMapping)  # type: ignore[attr-defined]


class _SelectorMapping(Mapping):
    """Live, read-only mapping of file objects to selector keys."""

    __slots__ = ("_selector",)

    def __init__(self, selector):
        self._selector = selector

    def __len__(self):
        return len(self._selector._fd_to_key)

    def get(self, fileobj, default=None):
        if _MAPPING_GET_CATCHES:
            try:  # as Mapping.get: any KeyError, a fileno() one too, gives default
                fd = self._selector._fileobj_lookup(fileobj)
            except KeyError:
                return default
        else:
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


_live_selectors: "weakref.WeakSet[SelectorBase]" = weakref.WeakSet()


def _after_fork_in_child():
    for selector in list(_live_selectors):
        selector._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SelectorBase(BaseSelector):
    """Bookkeeping shared by the backends.

    A backend provides ``_add(fd, events)`` and ``_remove(fd)`` (the kernel
    side of register/unregister; ``_add`` raises and records nothing when
    the kernel refuses), ``modify``, the native wait and ``_size_wait``.
    """

    # Set by each backend: the native wait and its state (the main one, see
    # select()).
    _state: Any
    _native_wait: Any

    def _new_wait(self):
        """A wait state of this selector's kind, sized by _size_wait()."""
        raise NotImplementedError

    def _size_wait(self, state):
        """Give `state` (which the caller holds) buffers for the interest
        list as it is now."""
        raise NotImplementedError

    def _select_aside(self, timeout_ns):
        """select() while another select() holds the main state (another
        thread's, or an outer one of this thread when a signal handler
        selects): wait with a spare state, kept for the next time, so that
        concurrent waits do not allocate either."""
        spares = self._spares
        state = spares.pop() if spares else self._new_wait()
        try:
            return self._results_of(self._native_wait(state, timeout_ns), state, timeout_ns)
        finally:
            state.owner = 0  # released already unless an exception came out
            spares.append(state)

    # The struct whose spin lock guards the interest list (helpers.c).
    _locked: Any

    def __init__(self) -> None:
        # fd -> SelectorKey: the one record of what is registered.
        self._fd_to_key: dict[int, SelectorKey] = {}
        self._map: Optional[_SelectorMapping] = _SelectorMapping(self)
        self._spares: list = []  # wait states for concurrent select()s
        _live_selectors.add(self)

    def _after_fork_in_child(self):
        """The threads that held this selector's lock or wait state, if
        any, did not come into this child: free both (spare states that
        another thread was using did not come back to `_spares`)."""
        self._locked.lock = 0
        self._state.owner = 0

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

    # select(): the backend's _native_wait(state, timeout_ns) writes the fds
    # it found to state.ready_fds and their readiness bits to state.ready,
    # and returns their number, -errno or a REACTOR_* code (helpers.c).
    _TIMEOUT_LIMIT_NS = _MAX_MS_TIMEOUT_NS

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        if timeout is None:
            timeout_ns = -1
        elif timeout <= 0:  # TypeError for a non-number, as in _timeout_ns()
            timeout_ns = 0
        else:
            timeout_ns = self._timeout_ns(timeout)
        state = self._state
        try:
            n = self._native_wait(state, timeout_ns)
        except BaseException:
            # A signal handler raised as the wait returned, which may have
            # kept the state (-EINTR): free it, or every later select()
            # would find it taken (helpers.c).
            release(state)
            raise
        if n >= _ONE:
            # The common case: one fd, in the result itself (helpers.c);
            # _decode()'s first branch, inlined: a call costs a tenth here.
            code = n - _ONE
            key = self._fd_to_key.get(code >> 2)
            return [] if key is None else [(key, code & 3 & key.events)]
        if n == 0:
            return []
        return self._results_of(n, state, timeout_ns)

    def _results_of(self, n, state, timeout_ns):
        """select()'s list for a wait's result n in `state` (helpers.c).

        REACTOR_EBUSY: another select() holds the state; wait aside.
        REACTOR_EGROW: the buffers are resized and the wait made again.
        REACTOR_ESTALE (epoll): every event was stale; nothing is ready.
        EINTR (PEP 475): Python has run the signal handler (if it raised,
        the exception has left select() already, see select()); wait again
        for the time left, and when none is left report nothing ready, as
        the stdlib does.
        Before waiting again the state is released: the new wait claims it
        afresh, and may find that another thread took it meanwhile.
        """
        if n == _EBUSY:
            return self._select_aside(timeout_ns)
        try:
            while n < 0:
                if n == -_EINTR:
                    if timeout_ns > 0:
                        timeout_ns = state.deadline_ns - monotonic_ns()
                        if timeout_ns <= 0:
                            state.owner = 0
                            return []
                elif n == _EGROW:
                    self._size_wait(state)
                elif n == _EBUSY:  # taken while we released it to wait again
                    break
                elif n == _ESTALE:
                    self._stale_only(state)
                    return []
                else:
                    raise self._wait_error(n)
                state.owner = 0
                n = self._native_wait(state, timeout_ns)
            else:
                return self._decode(n, state)
        except BaseException:
            release(state)
            raise
        return self._select_aside(timeout_ns)

    def _decode(self, n, state):
        """The (key, mask) list for a wait's result n >= 0 in `state`; the
        state is released once its arrays are read (helpers.c)."""
        if n >= _ONE:
            code = n - _ONE
            key = self._fd_to_key.get(code >> 2)
            return [] if key is None else [(key, code & 3 & key.events)]
        if n == 0:
            return []
        try:
            return self._collect(n, state)
        finally:
            state.owner = 0

    def _timeout_ns(self, timeout):
        """Nanoseconds to wait for a timeout that is not None: 0 for <= 0,
        else rounded up, failing as the stdlib does (ValueError for NaN,
        OverflowError past the backend's limit, TypeError for a non-number)."""
        if timeout <= 0:
            return 0
        ns = timeout * 1e9
        if ns > self._TIMEOUT_LIMIT_NS:  # inf too
            raise self._timeout_too_large(timeout)
        return math.ceil(ns)  # ValueError for NaN, TypeError for a non-number

    def _timeout_too_large(self, timeout):
        return OverflowError("timeout is too large")

    def _collect(self, n, state):
        """The (key, mask) list for the n >= 2 results in `state`'s arrays."""
        get = self._fd_to_key.get
        ready = []
        for fd, mask in zip(_unpack(state.ready_fds, n), _unpack(state.ready, n)):
            key = get(fd)
            if key is not None:
                ready.append((key, mask & key.events))
        return ready

    def _wait_error(self, result):
        """The exception for a wait that failed with -errno `result`."""
        return oserror(-result)

    def _stale_only(self, state):
        """A wait returned only events of stale registrations (epoll)."""
