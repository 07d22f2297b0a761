"""EpollSelector: the stdlib's EpollSelector on direct epoll syscalls.

Facts about epoll this module relies on (numbers are referred to below):

[E1] An epoll registration belongs to the pair (open file description, fd
     number), not to the fd: close(fd) removes it only when no other fd
     (a dup, a child's copy) keeps the file open.  Until then the kernel
     keeps reporting the old file under the old fd number, even after that
     number was reused for a new file (epoll(7), Q&A 6).  We cannot remove
     such a registration (EPOLL_CTL_DEL needs an fd of that file), but we can
     recognise its events: reactor._native stamps each registration of an
     fd number with a new 30-bit generation, carried in epoll_data.u64, and
     drops an event whose stamp is not its fd's current one.  An event for
     an fd that is no longer registered is dropped too.  Both are counted
     in `stale_events`.
[E2] After fork() parent and child share one epoll instance: a child's
     EPOLL_CTL_DEL/MOD changes the parent's registrations.  We rebuild every
     live EpollSelector in the child (os.register_at_fork): a new epoll fd,
     every key registered again, the inherited epoll fd closed.  A one-shot
     registration that had fired in the parent is armed again in the child.
[E3] HUP and ERR are always reported, whatever the interest mask, so a
     registration with an empty mask is not parked.  Like the stdlib we
     report them as readable and writable, masked by the key's events.
[E4] epoll refuses regular files and directories with EPERM: they are
     always ready.  register() raises PermissionError and records nothing.
[E5] EPOLLEXCLUSIVE is valid only with EPOLL_CTL_ADD, and only together with
     EPOLLIN, EPOLLOUT, EPOLLET and EPOLLWAKEUP; EPOLL_CTL_MOD of an exclusive
     registration fails with EINVAL (epoll_ctl(2)).
[E6] epoll_wait() has a resolution of 1 ms; epoll_pwait2() (Linux 5.11)
     takes a timespec.  reactor._native uses epoll_pwait2 for positive
     timeouts and falls back to epoll_wait, rounding up, on ENOSYS.
[E7] One wait returns at most maxevents events.  maxevents is the length of
     our buffers, which cover every fd number up to the highest registered
     (at least 1024), so a wait can return every registered fd (the stdlib
     passes the number of keys, at least 1).
[E8] With many events per wait, building a new (key, mask) tuple for each
     costs more than the wait's own user-space work.  Each (fd, mask) result
     is built once and kept in `_pairs`, keyed by (fd << 2) | mask, which
     reactor._native writes per event; a change of the fd's key (register,
     modify, unregister) drops its entries.  Results are immutable tuples, so
     sharing them between calls is not observable except by identity.
"""

import os
import weakref
from selectors import EVENT_READ, EVENT_WRITE, SelectorKey
from typing import Any, List, Optional, Tuple

from ._base import FD_LIMIT, INT_MAX, FileDescriptorLike, SelectorBase, make_key, oserror
from ._native import ffi, lib

EPOLLET = lib.EPOLLET
EPOLLONESHOT = lib.EPOLLONESHOT
EPOLLEXCLUSIVE = lib.EPOLLEXCLUSIVE
EPOLLRDHUP = lib.EPOLLRDHUP
EPOLLPRI = lib.EPOLLPRI

_EXTRA_FLAGS = EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE | EPOLLRDHUP | EPOLLPRI
_NOT_WITH_EXCLUSIVE = EPOLLONESHOT | EPOLLRDHUP | EPOLLPRI  # [E5]

# EVENT_* mask (0..3) -> epoll interest; a mask with other bits, which
# modify() accepts like the stdlib does, keeps only these two.
_INTEREST = (0, lib.EPOLLIN, lib.EPOLLOUT, lib.EPOLLIN | lib.EPOLLOUT)
_VALID_EVENTS = EVENT_READ | EVENT_WRITE
# The stdlib's reading of epoll events [E3]: anything but EPOLLOUT makes a
# file readable, anything but EPOLLIN makes it writable.
_READ_BITS = 0xFFFFFFFF & ~lib.EPOLLOUT
_WRITE_BITS = 0xFFFFFFFF & ~lib.EPOLLIN
assert (EVENT_READ, EVENT_WRITE) == (1, 2)  # the bits reactor._native writes

_ADD, _MOD, _DEL = lib.EPOLL_CTL_ADD, lib.EPOLL_CTL_MOD, lib.EPOLL_CTL_DEL
_epoll_ctl = lib.reactor_epoll_ctl
_epoll_wait = lib.reactor_epoll_wait
_unpack = ffi.unpack
_new_tuple = tuple.__new__
_CLOSED = "I/O operation on closed epoll object"

_live_selectors: "weakref.WeakSet[EpollSelector]" = weakref.WeakSet()


def _check_flags(flags):
    if not isinstance(flags, int):
        raise TypeError(f"flags must be an int, not {type(flags).__name__}")
    if flags & ~_EXTRA_FLAGS:
        raise ValueError(f"Invalid epoll flags: {flags:#x} (allowed: EPOLLET, "
                         "EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLRDHUP, EPOLLPRI)")
    if flags & EPOLLEXCLUSIVE and flags & _NOT_WITH_EXCLUSIVE:
        raise ValueError("EPOLLEXCLUSIVE cannot be combined with EPOLLONESHOT, "
                         "EPOLLRDHUP or EPOLLPRI (epoll_ctl(2))")


class EpollSelector(SelectorBase):
    """Epoll-based selector, with epoll's extra flags on request.

    ``register(..., flags=EPOLLET | ...)`` adds epoll flags to a
    registration; ``modify(..., flags=...)`` replaces them and always asks
    the kernel, which re-arms an EPOLLONESHOT registration.
    """

    _native_wait = staticmethod(lib.reactor_epoll_wait)  # for the base's retries

    def __init__(self):
        super().__init__()
        epfd = lib.reactor_epoll_create()
        if epfd < 0:
            raise oserror(-epfd)
        self._epfd = epfd
        self._fd_to_flags = {}  # only registrations with extra flags
        # fds whose key.events is not a plain int (1.0 == 1 passes modify
        # unnoticed, as in the stdlib): select() masks theirs in Python, so
        # that `mask & key.events` fails or converts exactly as there.
        self._odd_events = set()
        self._stale_unregistered = 0
        self._pairs = {}  # (fd << 2) | mask -> (key, mask) [E8]
        self._state = ffi.new("struct reactor_epoll *", {
            "epfd": epfd, "read_bits": _READ_BITS, "write_bits": _WRITE_BITS})
        self._arrays = {}  # the arrays self._state points into, kept alive
        self._generations_len = 0
        self._grow_generations(1023)
        _live_selectors.add(self)

    def _grow_generations(self, fd):
        """Make room for fd: reactor._native keeps a stamp per fd number [E1]
        below generations_len, and the wait buffers are as long, so one wait
        can return every registered fd [E7] without counting keys."""
        if fd > INT_MAX:  # the stdlib's argument conversion comes first
            raise OverflowError("Python int too large to convert to C int")
        if self._epfd < 0:
            raise ValueError(_CLOSED)
        if fd >= FD_LIMIT:
            # No fd can be open at or above fs.nr_open: the kernel's answer.
            raise oserror(lib.EBADF)
        old = self._generations_len
        length = min(max(fd + 1, 2 * old), FD_LIMIT)
        state, arrays = self._state, self._arrays
        generations = ffi.new("uint32_t[]", length)
        if old:
            ffi.memmove(generations, state.generations, old * ffi.sizeof("uint32_t"))
        arrays["generations"] = state.generations = generations
        arrays["events"] = state.events = ffi.new("struct epoll_event[]", length)
        arrays["fds"] = state.fds = self._ready_fds = ffi.new("int[]", length)
        arrays["ready"] = state.ready = self._ready = ffi.new("uint32_t[]", length)
        arrays["codes"] = state.codes = self._codes = ffi.new("int64_t[]", length)
        state.capacity = state.generations_len = self._generations_len = length

    @property
    def stale_events(self) -> int:
        """Events dropped because they came from a stale registration [E1]."""
        return self._state.stale + self._stale_unregistered

    def fileno(self) -> int:
        if self._epfd < 0:
            raise ValueError(_CLOSED)
        return self._epfd

    def _ctl_failed(self, rc):
        return ValueError(_CLOSED) if self._epfd < 0 else oserror(-rc)

    # register(), unregister() and modify() inline the base class's helpers:
    # on these paths each Python call costs about a tenth of the epoll_ctl.

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None, *,
                 flags: int = 0) -> SelectorKey:
        if (not events) or (events & ~_VALID_EVENTS):
            raise ValueError(f"Invalid events: {events!r}")
        if flags.__class__ is not int or flags:
            _check_flags(flags)
        try:
            fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            fd = -1
        if fd < 0:
            fd = self._fileobj_lookup(fileobj)  # raises the stdlib's error
        fd_to_key = self._fd_to_key
        if fd in fd_to_key:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        if fd >= self._generations_len:
            self._grow_generations(fd)
        rc = _epoll_ctl(self._state, _ADD, fd, _INTEREST[events] | flags, events)
        if rc:
            raise self._ctl_failed(rc)
        fd_to_key[fd] = key = _new_tuple(SelectorKey, (fileobj, fd, events, data))
        if self._pairs:
            self._drop_pairs(fd)  # [E8]
        if events.__class__ is not int:
            self._odd_events.add(fd)
        if flags:
            self._fd_to_flags[fd] = flags
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> SelectorKey:
        try:
            fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            fd = -1
        if fd < 0:
            fd = self._fileobj_lookup(fileobj)  # raises the stdlib's error
        key = self._fd_to_key.pop(fd, None)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if self._fd_to_flags:
            self._fd_to_flags.pop(fd, None)
        if self._odd_events:
            self._odd_events.discard(fd)
        if self._pairs:
            self._drop_pairs(fd)  # [E8]
        # The result is ignored, the one error we swallow, as the stdlib
        # does: the fd may have been closed since it was registered (the
        # kernel then dropped the registration, or it is stale [E1]).
        _epoll_ctl(self._state, _DEL, fd, 0, 0)
        return key

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None, *,
               flags: Optional[int] = None) -> SelectorKey:
        try:
            fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            fd = -1
        if fd < 0:
            fd = self._fileobj_lookup(fileobj)  # raises the stdlib's error
        key = self._fd_to_key.get(fd)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if flags is not None or self._fd_to_flags:
            return self._modify_with_flags(key, events, data, flags)
        # The stdlib's modify: ask the kernel only for a new mask (a mask
        # with other bits is accepted, as there); compare data either way.
        changed = False
        if events != key.events:
            interest = events & _VALID_EVENTS
            rc = _epoll_ctl(self._state, _MOD, fd, _INTEREST[interest], interest)
            if rc:
                self._forget(fd)
                raise self._ctl_failed(rc)
            changed = True
        if data != key.data:
            changed = True
        if changed:
            self._fd_to_key[fd] = key = _new_tuple(SelectorKey,
                                                   (key.fileobj, fd, events, data))
            if self._pairs:
                self._drop_pairs(fd)  # [E8]
            if events.__class__ is not int or self._odd_events:
                self._note_odd_events(fd, events)
        return key

    def _note_odd_events(self, fd, events):
        if events.__class__ is int:
            self._odd_events.discard(fd)
        else:
            self._odd_events.add(fd)

    def _modify_with_flags(self, key, events, data, flags):
        fd = key.fd
        if flags is not None:
            _check_flags(flags)
            if flags & EPOLLEXCLUSIVE:
                raise ValueError("EPOLLEXCLUSIVE can only be set by register() "
                                 "(epoll_ctl(2))")
        old_flags = self._fd_to_flags.get(fd, 0)
        changed = False
        if events != key.events or flags is not None:
            if old_flags & EPOLLEXCLUSIVE:
                raise ValueError("a registration made with EPOLLEXCLUSIVE cannot "
                                 "be modified; unregister and register it again "
                                 "(epoll_ctl(2))")
            new_flags = old_flags if flags is None else flags
            interest = events & _VALID_EVENTS
            rc = _epoll_ctl(self._state, _MOD, fd, _INTEREST[interest] | new_flags, interest)
            if rc:
                self._forget(fd)
                raise self._ctl_failed(rc)
            if new_flags:
                self._fd_to_flags[fd] = new_flags
            elif old_flags:
                del self._fd_to_flags[fd]
            changed = events != key.events
        if data != key.data:
            changed = True
        if changed:
            key = make_key(key.fileobj, fd, events, data)
            self._fd_to_key[fd] = key
            self._drop_pairs(fd)  # [E8]
            self._note_odd_events(fd, events)
        return key

    def _drop_pairs(self, fd):
        """Forget the kept results of fd [E8]: its key changed."""
        code, pop = fd << 2, self._pairs.pop
        pop(code, None)
        pop(code | 1, None)
        pop(code | 2, None)
        pop(code | 3, None)

    def _build_pairs(self, n):
        """The n events' results, building and keeping the missing ones [E8];
        events of fds no longer registered are dropped [E1]."""
        pairs, current = self._pairs, self._fd_to_key.get
        ready = []
        for code in _unpack(self._codes, n):
            pair = pairs.get(code)
            if pair is None:
                key = current(code >> 2)
                if key is None:
                    continue
                pair = pairs[code] = (key, code & 3)
            ready.append(pair)
        self._stale_unregistered += n - len(ready)
        return ready

    def _forget(self, fd):
        # As the stdlib does, a registration the kernel would not modify
        # (its fd was closed, say) is forgotten before the error is raised.
        del self._fd_to_key[fd]
        self._fd_to_flags.pop(fd, None)
        self._odd_events.discard(fd)
        self._drop_pairs(fd)  # [E8]

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        timeout_ns = -1 if timeout is None else self._timeout_ns(timeout)
        n = _epoll_wait(self._state, timeout_ns)
        if n == 1 and not self._odd_events:
            # The common case, without unpacking: one cdata read each.
            key = self._fd_to_key.get(self._ready_fds[0])
            if key is not None:
                return [(key, self._ready[0])]
        elif n == 0:
            return []
        elif n > 1 and not self._odd_events:
            try:
                # Readiness comes masked by each key's events (in C), so the
                # kept results serve without a Python loop [E8].
                return list(map(self._pairs.__getitem__, _unpack(self._codes, n)))
            except KeyError:
                return self._build_pairs(n)
        elif n < 0:
            if self._epfd < 0:
                raise ValueError(_CLOSED)
            n = self._wait_failed(n, timeout_ns)
        # Masking again in Python is harmless for plain ints and raises as
        # the stdlib does for the odd ones.
        ready = self._collect(n, timeout_ns)
        self._stale_unregistered += n - len(ready)  # [E1]
        return ready

    def close(self) -> None:
        epfd, self._epfd = self._epfd, -1
        self._state.epfd = -1
        if epfd >= 0:
            _live_selectors.discard(self)
            lib.reactor_close(epfd)
        self._fd_to_flags.clear()
        self._odd_events.clear()
        self._pairs.clear()
        super().close()

    def __del__(self):
        # An unclosed selector must not leak its epoll fd.
        epfd = getattr(self, "_epfd", -1)
        if epfd >= 0:
            self._epfd = -1
            lib.reactor_close(epfd)

    def _rebuild_after_fork(self):
        """[E2] Give this child its own epoll instance with the same keys."""
        old = self._epfd
        epfd = lib.reactor_epoll_create()
        if epfd < 0:
            raise oserror(-epfd)
        self._epfd = self._state.epfd = epfd
        for fd, key in self._fd_to_key.items():
            # A key whose fd is closed cannot be added again; in the parent
            # its registration went away with the file too, so the key stays
            # and unregister() works as it would there.
            interest = key.events & _VALID_EVENTS
            _epoll_ctl(self._state, _ADD, fd,
                       _INTEREST[interest] | self._fd_to_flags.get(fd, 0), interest)
        lib.reactor_close(old)


def _rebuild_all_after_fork():
    for selector in list(_live_selectors):
        if selector._epfd >= 0:
            selector._rebuild_after_fork()


os.register_at_fork(after_in_child=_rebuild_all_after_fork)
