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
     is built once and kept in `_pairs`, keyed by the number reactor._native
     writes per event, REACTOR_ONE + ((fd << 2) | mask) (also a wait's
     result when exactly one fd is ready); a change of the fd's key (register,
     modify, unregister) drops its entries.  Results are immutable tuples, so
     sharing them between calls is not observable except by identity.
[E10] A registration may ask the wait to read for its owner
     (REACTOR_AUTOREAD, reactor._native): reactor_epoll_wait_read() then
     recv()s from each such fd that is readable, into one buffer, and
     reports the byte counts beside the events.  The Reactor uses it for its
     stream transports, so a message costs one native call for the wait and
     the read of every ready socket; select() never reads.
[E9] A stale registration [E1] that stays ready (level-triggered) wakes every
     wait at once with nothing to report: a loop around select() spins.  It
     cannot be removed, so it is reported: once stale events of one fd
     number have come in 8 waits in a row, a wait that returns only those
     warns (StaleRegistrationWarning, once per fd number and selector).  A
     wait racing an unregister() in another thread can see one stale event;
     that is not reported.  Unregistering before closing avoids it.
"""

from __future__ import annotations

import math
import warnings
from selectors import EVENT_READ, EVENT_WRITE, SelectorKey

from ._base import FD_LIMIT, INT_MAX, SelectorBase, keep_alive, make_key, oserror
from ._native import ffi, lib

TYPE_CHECKING = False  # see _base.py
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

    from ._base import FileDescriptorLike

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
_EBUSY, _ESTALE, _ONE = lib.REACTOR_EBUSY, lib.REACTOR_ESTALE, lib.REACTOR_ONE
_AUTOREAD = lib.REACTOR_AUTOREAD  # [E10]
# Consecutive waits with stale events of one fd before it is reported [E9]:
# a registration removed by an EPOLL_CTL_DEL racing a wait shows up once.
_STALE_STREAK = 8
_unpack = ffi.unpack
_new_tuple = tuple.__new__
_CLOSED = "I/O operation on closed epoll object"

class StaleRegistrationWarning(RuntimeWarning):
    """epoll keeps reporting a file closed while registered [E9]."""


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
        self._stale_reported = set()  # fds already warned about [E9]
        self._pairs = {}  # REACTOR_ONE + ((fd << 2) | mask) -> (key, mask) [E8]
        self._shared = self._locked = ffi.new("struct reactor_epoll_shared *")
        # Every stamp array published, kept until close(): a wait in another
        # thread may still read one that was replaced [E1].
        self._stamps = []
        self._stamps_len = 0
        self._grow_stamps(1023)
        self._state = self._new_wait()
        self._codes = self._state.codes
        self._lens = self._state.lens

    def _grow_stamps(self, fd):
        """Make room for fd: reactor._native keeps a stamp per fd number [E1]
        below _stamps_len, and the wait buffers follow, so one wait can
        return every registered fd [E7] without counting keys."""
        if fd > INT_MAX:  # the stdlib's argument conversion comes first
            raise OverflowError("Python int too large to convert to C int")
        if self._epfd < 0:
            raise ValueError(_CLOSED)
        if fd >= FD_LIMIT:
            # No fd can be open at or above fs.nr_open: the kernel's answer.
            raise oserror(lib.EBADF)
        length = min(max(fd + 1, 2 * self._stamps_len), FD_LIMIT)
        array = ffi.new("uint32_t[]", length)
        stamps = ffi.new("struct reactor_stamps *", {"len": length, "stamp": array})
        rc = lib.reactor_epoll_set_stamps(self._shared, stamps)
        assert rc == 0, rc  # the length only grows
        self._stamps.append((stamps, array))
        self._stamps_len = length
        # The next wait of each state finds its buffers short and asks for
        # more (REACTOR_EGROW): a wait in progress keeps its own.
        self._shared.want = length

    def _new_wait(self):
        state = ffi.new("struct reactor_epoll *", {
            "epfd": self._epfd, "read_bits": _READ_BITS, "write_bits": _WRITE_BITS,
            "shared": self._shared})
        self._size_wait(state)
        return state

    def _size_wait(self, state):
        capacity = self._shared.want
        events = ffi.new("struct epoll_event[]", capacity)
        ready_fds = ffi.new("int[]", capacity)
        ready = ffi.new("uint32_t[]", capacity)
        codes = ffi.new("int64_t[]", capacity)
        lens = ffi.new("int64_t[]", capacity)
        state.events, state.ready_fds, state.ready, state.codes = events, ready_fds, ready, codes
        state.lens = lens
        state.capacity = capacity
        keep_alive(state, events, ready_fds, ready, codes, lens)

    def _regrow_wait(self, state):
        state = super()._regrow_wait(state)
        if state is self._state:
            self._codes = state.codes  # select() reads them without a cdata lookup
            self._lens = state.lens
        return state

    @property
    def stale_events(self) -> int:
        """Events dropped because they came from a stale registration [E1]."""
        return self._shared.stale + self._stale_unregistered

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
        if fd >= self._stamps_len:
            self._grow_stamps(fd)
        # Recorded before the kernel is asked, as the stdlib does: a select()
        # in another thread can get the first event as soon as the kernel
        # has the registration.  Undone if the kernel refuses.
        fd_to_key[fd] = key = _new_tuple(SelectorKey, (fileobj, fd, events, data))
        if self._pairs:
            self._drop_pairs(fd)  # [E8]
        if events.__class__ is not int:
            self._odd_events.add(fd)
        if flags:
            self._fd_to_flags[fd] = flags
        rc = _epoll_ctl(self._state, _ADD, fd, _INTEREST[events] | flags, events)
        if rc:
            self._forget(fd)
            raise self._ctl_failed(rc)
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

    # -- for the Reactor's transports [E10] ----------------------------------------

    def _register_autoread(self, fd, events, data):
        """register() of an int fd whose readable events the Reactor's wait
        reads for it [E10]."""
        fd_to_key = self._fd_to_key
        if fd in fd_to_key:
            raise KeyError(f"{fd!r} (FD {fd}) is already registered")
        if fd >= self._stamps_len:
            self._grow_stamps(fd)
        fd_to_key[fd] = key = _new_tuple(SelectorKey, (fd, fd, events, data))
        if self._pairs:
            self._drop_pairs(fd)
        rc = _epoll_ctl(self._state, _ADD, fd, _INTEREST[events], events | _AUTOREAD)
        if rc:
            self._forget(fd)
            raise self._ctl_failed(rc)
        return key

    def _modify_autoread(self, fd, events, data, autoread=True):
        """modify() of a registration made by _register_autoread()."""
        rc = _epoll_ctl(self._state, _MOD, fd, _INTEREST[events],
                        events | _AUTOREAD if autoread else events)
        if rc:
            self._forget(fd)
            raise self._ctl_failed(rc)
        self._fd_to_key[fd] = key = _new_tuple(SelectorKey, (fd, fd, events, data))
        if self._pairs:
            self._drop_pairs(fd)
        return key

    def _pairs_of(self, codes):
        """The (key, mask) of each event code, None where the fd is no longer
        registered: one entry per code, for the Reactor's reads [E8][E10]."""
        pairs, current = self._pairs, self._fd_to_key.get
        out = []
        for code in codes:
            pair = pairs.get(code)
            if pair is None:
                key = current((code - _ONE) >> 2)
                if key is not None:
                    pair = self._keep_pair(code, key)
            out.append(pair)
        return out

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
        code, pop = _ONE + (fd << 2), self._pairs.pop
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
                key = current((code - _ONE) >> 2)
                if key is None:
                    continue
                pair = self._keep_pair(code, key)
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
        if n >= _ONE:
            # One fd, in the result itself, which is also its key in the
            # kept results [E8]; the wait state is released already.
            pair = self._pairs.get(n)
            return [pair] if pair is not None else self._one(n)
        if n == 0:
            return []
        if n > 1 and not self._odd_events:
            state = self._state
            try:
                # Readiness comes masked by each key's events (in C), so the
                # kept results serve without a Python loop [E8].
                return list(map(self._pairs.__getitem__, _unpack(self._codes, n)))
            except KeyError:
                return self._build_pairs(n)
            finally:
                state.owner = 0  # its arrays are read
        return self._results_of(n, timeout_ns)

    def _one(self, code):
        """select()'s list for one fd ready, reported as `code` [E8]."""
        fd = (code - _ONE) >> 2
        key = self._fd_to_key.get(fd)
        if key is None:
            self._stale_unregistered += 1  # [E1]
            return []
        if fd in self._odd_events:
            # Masked again in Python, to fail or convert as the stdlib does.
            return [(key, code & 3 & key.events)]
        return [self._keep_pair(code, key)]

    def _keep_pair(self, code, key):
        pair = self._pairs[code] = (key, code & 3)
        if self._fd_to_key.get(key.fd) is not key:
            # Another thread changed the key meanwhile and may have dropped
            # this fd's results before we kept ours [E8].
            self._pairs.pop(code, None)
        return pair

    def _decode(self, n, state):
        return self._one(n) if n >= _ONE else super()._decode(n, state)

    def _timeout_too_large(self, timeout):
        # The stdlib's order: its own ceil(timeout * 1e3) overflows first;
        # then the closed epoll object refuses; then the range check.
        if self._epfd < 0 and math.isfinite(timeout * 1e3):
            return ValueError(_CLOSED)
        return OverflowError("timeout is too large")

    def _wait_error(self, result):
        return ValueError(_CLOSED) if self._epfd < 0 else oserror(-result)

    def _stale_only(self, state):
        """[E9] A wait returned nothing but events of a stale registration."""
        if state.stale_streak >= _STALE_STREAK:
            self._report_stale(state.stale_fd)

    def _report_stale(self, fd):
        if fd in self._stale_reported:
            return
        self._stale_reported.add(fd)
        warnings.warn(StaleRegistrationWarning(
            f"epoll keeps reporting fd {fd} for a file that is no longer "
            f"registered under that number: fd {fd} was closed (or unregistered "
            "after it was closed) while another fd still refers to its file, a "
            "dup() or a copy inherited by a child process (epoll(7), Q&A 6). "
            "reactor drops these events, but a level-triggered one wakes every "
            "wait at once; unregister fds before closing them"),
            stacklevel=6)  # select() <- _results_of <- _wait_failed <- _stale_only <- here

    def _collect(self, n, state):
        # Masking again in Python is harmless for plain ints and raises as
        # the stdlib does for the odd ones.
        ready = super()._collect(n, state)
        self._stale_unregistered += n - len(ready)  # [E1]
        return ready

    def close(self) -> None:
        epfd, self._epfd = self._epfd, -1
        self._state.epfd = -1
        if epfd >= 0:
            lib.reactor_close(epfd)
        self._fd_to_flags.clear()
        self._odd_events.clear()
        self._pairs.clear()
        super().close()

    def __del__(self, _warn=warnings.warn):
        # An unclosed selector must not leak its epoll fd.
        epfd = getattr(self, "_epfd", -1)
        if epfd >= 0:
            self._epfd = -1
            lib.reactor_close(epfd)
            _warn(f"unclosed selector {self!r} (its epoll fd {epfd} is closed now)",
                  ResourceWarning, source=self)

    def _after_fork_in_child(self):
        super()._after_fork_in_child()
        if self._epfd >= 0:
            self._rebuild_after_fork()

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
