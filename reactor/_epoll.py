"""EpollSelector: the stdlib's EpollSelector on direct epoll syscalls.

Long because it is one class with one set of records (keys, codes, kept
results) that every part changes: the stdlib's interface, epoll's extra
flags, the wait that reads for the Reactor's transports, fork and stale
registrations; and the facts below explain each of them once.

Facts about epoll this module relies on (numbers are referred to below):

[E1] An epoll registration belongs to the pair (open file description, fd
     number), not to the fd: close(fd) removes it only when no other fd
     (a dup, a child's copy) keeps the file open.  Until then the kernel
     keeps reporting the old file under the old fd number, even after that
     number was reused for a new file (epoll(7), Q&A 6).  We cannot remove
     such a registration (EPOLL_CTL_DEL needs an fd of that file), but we can
     recognise its events: reactor._native gives each registration a slot
     and a generation, carried in epoll_data.u64 as the registration's
     code, and drops an event whose slot no longer holds that generation
     (unregister() releases the slot).  An event whose fd is no longer
     registered by the time we read it is dropped too.  Both are counted
     in `stale_events`.
[E2] After fork() parent and child share one epoll instance: a child's
     EPOLL_CTL_DEL/MOD changes the parent's registrations.  We rebuild every
     live EpollSelector in the child (os.register_at_fork): a new epoll fd,
     every key registered again, the inherited epoll fd closed.  A one-shot
     registration that had fired in the parent is armed again in the child.
     If the child cannot get an epoll fd (EMFILE, say), the inherited fd is
     closed all the same and the selector is left unusable: what would
     need the kernel (register, a mask change, select, fileno) raises
     OSError saying so, while unregister, get_key and close, which need
     nothing of it, still work.
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
     our buffers, which is the number of registration slots: at least the
     number of registrations, at most twice their peak (slots double when
     full, and are reused), so one wait can return every registered fd
     (the stdlib passes the number of keys, at least 1) and memory follows
     the registrations, never the fd numbers.
[E8] With many events per wait, building a new (key, mask) tuple for each
     costs more than the wait's own user-space work.  Each (key, mask)
     result is built once and kept in `_pairs`, keyed by the event's code
     (reactor._native: the registration's code base | mask), which is also
     a wait's result when exactly one fd is ready; a change of the key
     (modify, unregister) drops its entries, and a new registration has new
     codes.  Results are immutable tuples, so sharing them between calls is
     not observable except by identity.
[E10] A registration may ask the wait to read for its owner
     (REACTOR_AUTOREAD, reactor._native): reactor_epoll_wait_read() then
     recv()s from each such fd that is readable, into one buffer, and
     reports the byte counts beside the events.  The Reactor uses it for its
     stream transports, so a message costs one native call for the wait and
     the read of every ready socket; select() never reads.
[E9] A stale registration [E1] that stays ready (level-triggered) wakes every
     wait at once with nothing to report: a loop around select() spins.  It
     cannot be removed, so it is reported: once stale events of one
     registration have come in 8 waits in a row, a wait that returns only
     those warns (StaleRegistrationWarning, once per fd number and
     selector; the fd number is read from /proc/self/fdinfo).  A wait
     racing an unregister() in another thread can see one stale event; that
     is not reported.  Unregistering before closing avoids it.
"""

from __future__ import annotations

import math
import warnings
from selectors import EVENT_READ, EVENT_WRITE, SelectorKey

from ._base import INT_MAX, SelectorBase, keep_alive, make_key, oserror, release
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

_VALID_EVENTS = EVENT_READ | EVENT_WRITE
# The stdlib's reading of epoll events [E3]: anything but EPOLLOUT makes a
# file readable, anything but EPOLLIN makes it writable.
_READ_BITS = 0xFFFFFFFF & ~lib.EPOLLOUT
_WRITE_BITS = 0xFFFFFFFF & ~lib.EPOLLIN
assert (EVENT_READ, EVENT_WRITE) == (1, 2)  # the bits reactor._native takes and writes

_epoll_add = lib.reactor_epoll_add
_epoll_modify = lib.reactor_epoll_modify
_epoll_delete = lib.reactor_epoll_delete
_epoll_wait = lib.reactor_epoll_wait
_wait_read = lib.reactor_epoll_wait_read
_fd_of = lib.reactor_epoll_fd_of
_EGROW, _ONE = lib.REACTOR_EGROW, lib.REACTOR_ONE
_AUTOREAD = lib.REACTOR_AUTOREAD  # [E10]
# Registration slots of a new selector; they double when full [E7].
_FIRST_SLOTS = 8
# Consecutive waits with stale events of one registration before it is
# reported [E9]: a registration removed by an EPOLL_CTL_DEL racing a wait
# shows up once.
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
        raise ValueError(
            f"Invalid epoll flags: {flags:#x} (allowed: EPOLLET, "
            "EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLRDHUP, EPOLLPRI)"
        )
    if flags & EPOLLEXCLUSIVE and flags & _NOT_WITH_EXCLUSIVE:
        raise ValueError(
            "EPOLLEXCLUSIVE cannot be combined with EPOLLONESHOT, "
            "EPOLLRDHUP or EPOLLPRI (epoll_ctl(2))"
        )


class EpollSelector(SelectorBase):
    """Epoll-based selector, with epoll's extra flags on request.

    ``register(..., flags=EPOLLET | ...)`` adds epoll flags to a
    registration; ``modify(..., flags=...)`` replaces them and always asks
    the kernel, which re-arms an EPOLLONESHOT registration.
    """

    _native_wait = staticmethod(lib.reactor_epoll_wait)  # for the base's retries

    def __init__(self):
        super().__init__()
        self._epfd = -1
        self._shared = self._locked = ffi.new("struct reactor_epoll_shared *")
        epfd = lib.reactor_epoll_create()
        if epfd < 0:
            raise oserror(-epfd)
        self._epfd = self._shared.epfd = epfd
        self._fork_error = None  # the OSError of a rebuild after fork() that failed [E2]
        self._fd_to_code = {}  # fd -> the code base of its registration [E1]
        self._fd_to_flags = {}  # only registrations with extra flags
        # fds whose key.events is not a plain int (1.0 == 1 passes modify
        # unnoticed, as in the stdlib): select() masks theirs in Python, so
        # that `mask & key.events` fails or converts exactly as there.
        self._odd_events = set()
        self._stale_unregistered = 0
        self._stale_reported = set()  # fds already warned about [E9]
        self._pairs = {}  # event code -> (key, mask) [E8]
        # Every slot table published, kept as long as the selector: a wait
        # in another thread may still read one that was replaced [E1].
        # Doubling keeps them all within twice the last one's size.
        self._slot_tables = []
        self._slots_len = 0
        self._grow_slots()
        self._state = None
        self._state = self._new_wait()
        self._codes, self._lens = self._state.codes, self._state.lens

    def _grow_slots(self):
        """Double the registration slots [E7]: the next wait of each state
        finds its buffers short (REACTOR_EGROW) and resizes them; a wait in
        progress keeps its own."""
        length = min(max(2 * self._slots_len, _FIRST_SLOTS), lib.REACTOR_SLOT_MAX)
        array = ffi.new("uint64_t[]", length)
        table = ffi.new("struct reactor_slots *", {"len": length, "slot": array})
        rc = lib.reactor_epoll_set_slots(self._shared, table)
        assert rc == 0, rc  # longer, and at most REACTOR_SLOT_MAX
        self._slot_tables.append((table, array))
        self._slots_len = length

    def _new_wait(self):
        state = ffi.new(
            "struct reactor_epoll *",
            {"read_bits": _READ_BITS, "write_bits": _WRITE_BITS, "shared": self._shared},
        )
        self._size_wait(state)
        return state

    def _size_wait(self, state):
        capacity = self._slots_len
        events = ffi.new("struct epoll_event[]", capacity)
        ready_fds = ffi.new("int[]", capacity)
        codes = ffi.new("int64_t[]", capacity)
        lens = ffi.new("int64_t[]", capacity)  # [E10]
        state.events, state.ready_fds, state.codes = events, ready_fds, codes
        state.lens = lens
        state.capacity = capacity
        keep_alive(state, events=events, ready_fds=ready_fds, codes=codes, lens=lens)
        if state is self._state:
            self._codes = codes  # select() reads them without a cdata lookup
            self._lens = lens

    def _buffer_sizes(self):
        """Entries in this selector's slot table and in the main wait
        state's buffers (for tests: memory follows registrations [E7])."""
        return {
            "slots": self._slots_len,
            "wait": self._state.capacity,
            "spares": [state.capacity for state in self._spares],
        }

    @property
    def stale_events(self) -> int:
        """Events dropped because they came from a stale registration [E1]."""
        return self._shared.stale + self._stale_unregistered

    def fileno(self) -> int:
        if self._epfd < 0:
            raise self._closed_error()
        return self._epfd

    def _closed_error(self):
        """What a call that needs the epoll fd raises once there is none."""
        error = self._fork_error
        if error is not None:  # [E2]
            return OSError(
                error.errno,
                "this EpollSelector cannot be used in this process: "
                "making its own epoll instance after fork() failed "
                f"({error.strerror}); the one it shared with the parent "
                "was closed. Close it and make a new selector",
            )
        return ValueError(_CLOSED)

    def _ctl_failed(self, rc):
        return self._closed_error() if self._epfd < 0 else oserror(-rc)

    # register(), unregister() and modify() inline the base class's helpers:
    # on these paths each Python call costs about a tenth of the epoll_ctl.

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None, *, flags: int = 0
    ) -> SelectorKey:
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
        # Recorded before the kernel is asked, as the stdlib does: a select()
        # in another thread can get the first event as soon as the kernel
        # has the registration.  Undone if the kernel refuses.
        fd_to_key[fd] = key = _new_tuple(SelectorKey, (fileobj, fd, events, data))
        if events.__class__ is not int:
            self._odd_events.add(fd)
        if flags:
            self._fd_to_flags[fd] = flags
        try:
            code = _epoll_add(self._shared, fd, flags, events)
            if code >= 0:
                self._fd_to_code[fd] = code
                return key
        except BaseException:
            # OverflowError for an fd past a C int (the stdlib's conversion
            # fails too), or a signal handler raising as the syscall
            # returned: nothing stays registered.
            self._undo_add(fd)
            raise
        self._add_failed(fd, code, flags, events)
        return key

    def _add_failed(self, fd, rc, flags, events):
        """After EPOLL_CTL_ADD of fd returned rc < 0: more slots and a new
        attempt for REACTOR_EGROW [E7]; the kernel's refusal forgets the
        key and raises."""
        try:
            while rc == _EGROW:
                self._grow_slots()
                rc = _epoll_add(self._shared, fd, flags, events)
            if rc >= 0:
                self._fd_to_code[fd] = rc
                return
        except BaseException:
            self._undo_add(fd)
            raise
        self._forget(fd)
        raise self._ctl_failed(rc)

    def _undo_add(self, fd):
        """Forget fd's registration after an exception inside register(),
        in the kernel too if the EPOLL_CTL_ADD was made."""
        code = self._fd_to_code.get(fd)
        if code is not None:
            _epoll_delete(self._shared, code)
        elif 0 <= fd <= INT_MAX:  # the code was lost with the exception
            lib.reactor_epoll_forget_fd(self._shared, fd)
        self._forget(fd)

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
        code = self._fd_to_code.pop(fd, 0)
        if self._pairs:
            self._drop_pairs(code)  # [E8]
        # The result is ignored, the one error we swallow, as the stdlib
        # does: the fd may have been closed since it was registered (the
        # kernel then dropped the registration, or it is stale [E1]).  The
        # registration's slot is released either way.
        _epoll_delete(self._shared, code)
        return key

    def modify(
        self,
        fileobj: FileDescriptorLike,
        events: int,
        data: Any = None,
        *,
        flags: Optional[int] = None,
    ) -> SelectorKey:
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
        if events == key.events:
            if data != key.data:  # no syscall
                self._fd_to_key[fd] = key = _new_tuple(
                    SelectorKey, (key.fileobj, fd, events, data)
                )
                if self._pairs:
                    self._drop_pairs(self._fd_to_code[fd])  # [E8]
                if events.__class__ is not int or self._odd_events:
                    self._note_odd_events(fd, events)
            return key
        interest = events & _VALID_EVENTS  # TypeError first, as in the stdlib
        code = self._fd_to_code[fd]
        try:  # _kernel_modify(), inline
            rc = _epoll_modify(self._shared, code, 0, interest)
        except BaseException:
            self._modify_interrupted(fd)
            raise
        if rc:
            self._forget(fd)  # reactor._native released the registration
            raise self._ctl_failed(rc)
        self._fd_to_key[fd] = key = _new_tuple(SelectorKey, (key.fileobj, fd, events, data))
        if self._pairs:
            self._drop_pairs(code)  # [E8]
        if events.__class__ is not int or self._odd_events:
            self._note_odd_events(fd, events)
        return key

    # -- the wait that reads, for reactor._poller [E10] ---------------------------
    # reactor._poller uses these and nothing else of the selector's insides:
    # _read_wait(), _read_batch(), _read_pair(), _read_retry(), _read_code(), and
    # _register_autoread() / _modify_autoread() for its transports.

    def _read_wait(self, timeout_ns, reads, keep):
        """reactor_epoll_wait_read(): the wait's result (a one-event code,
        a count, or a negative status for _results_of()).  If an exception
        leaves the call (a signal handler raising as it returned), `keep`
        gets the count of events it had read, while the state still holds
        them, before the state is released and the exception goes on."""
        state = self._state
        try:
            return _wait_read(state, timeout_ns, reads)
        except BaseException:
            try:
                keep(reads.count)
            finally:
                release(state)
            raise

    def _read_batch(self, count):
        """The last wait's `count` results as lists (codes, byte counts,
        (key, mask) of each as the wait saw it, None where the registration
        is gone); the wait's state is released."""
        try:
            codes = _unpack(self._codes, count)
            lens = _unpack(self._lens, count)
        finally:
            self._state.owner = 0  # its arrays are read
        known = self._pairs.get
        pairs = [known(code) for code in codes]
        if None in pairs:  # a result not kept yet, or an fd no longer registered [E8]
            pairs = self._pairs_of(codes)
        return codes, lens, pairs

    def _read_retry(self, status, timeout_ns):
        """select()'s results after a wait that returned `status` < 0
        (interrupted, buffers to grow, ...): the selector's own rules."""
        return self._results_of(status, self._state, timeout_ns)

    def _read_pair(self, code):
        """The (key, mask) of a one-event wait's `code`, None if its
        registration is gone [E8]."""
        pair = self._pairs.get(code)
        if pair is None:
            pairs = self._one(code)
            pair = pairs[0] if pairs else None
        return pair

    def _read_code(self, fd):
        """The code base of fd's registration [E1] (None: not registered)."""
        return self._fd_to_code.get(fd)

    def _register_autoread(self, fd, events, data):
        """register() of an int fd whose readable events the Reactor's wait
        reads for it [E10]."""
        fd_to_key = self._fd_to_key
        if fd in fd_to_key:
            raise KeyError(f"{fd!r} (FD {fd}) is already registered")
        fd_to_key[fd] = key = _new_tuple(SelectorKey, (fd, fd, events, data))
        try:
            code = _epoll_add(self._shared, fd, 0, events | _AUTOREAD)
        except BaseException:
            self._undo_add(fd)
            raise
        if code >= 0:
            self._fd_to_code[fd] = code
        else:
            self._add_failed(fd, code, 0, events | _AUTOREAD)
        return key

    def _modify_autoread(self, fd, events, data, autoread=True):
        """modify() of a registration made by _register_autoread()."""
        code = self._fd_to_code[fd]
        self._kernel_modify(fd, code, 0, events | _AUTOREAD if autoread else events)
        self._fd_to_key[fd] = key = _new_tuple(SelectorKey, (fd, fd, events, data))
        if self._pairs:
            self._drop_pairs(code)  # [E8]
        return key

    def _pairs_of(self, codes):
        """The (key, mask) of each event code, None where the registration is
        gone: one entry per code, for the Reactor's reads [E8][E10]."""
        pairs = self._pairs
        out = []
        for code in codes:
            pair = pairs.get(code)
            if pair is None:
                key = self._key_of(code)
                if key is not None:
                    pair = self._keep_pair(code, key)
            out.append(pair)
        return out

    def _kernel_modify(self, fd, code, flags, interest):
        """EPOLL_CTL_MOD of fd's registration `code`; a failure forgets the
        registration and raises.  (modify() has the same steps inline: it
        is timed against the stdlib's.)"""
        try:
            rc = _epoll_modify(self._shared, code, flags, interest)
        except BaseException:
            self._modify_interrupted(fd)
            raise
        if rc:
            self._forget(fd)  # reactor._native released the registration
            raise self._ctl_failed(rc)

    def _modify_interrupted(self, fd):
        """A signal handler raised as EPOLL_CTL_MOD returned: the kernel may
        have the new mask, the key has the old one.  The registration is
        forgotten, as the stdlib does on any exception there."""
        code = self._fd_to_code.get(fd)
        if code is not None:
            _epoll_delete(self._shared, code)
        self._forget(fd)

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
                raise ValueError("EPOLLEXCLUSIVE can only be set by register() (epoll_ctl(2))")
        old_flags = self._fd_to_flags.get(fd, 0)
        changed = False
        if events != key.events or flags is not None:
            if old_flags & EPOLLEXCLUSIVE:
                raise ValueError(
                    "a registration made with EPOLLEXCLUSIVE cannot "
                    "be modified; unregister and register it again "
                    "(epoll_ctl(2))"
                )
            new_flags = old_flags if flags is None else flags
            interest = events & _VALID_EVENTS  # TypeError first, as in the stdlib
            self._kernel_modify(fd, self._fd_to_code[fd], new_flags, interest)
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
            self._drop_pairs(self._fd_to_code[fd])  # [E8]
            self._note_odd_events(fd, events)
        return key

    def _drop_pairs(self, code):
        """Forget the kept results of the registration `code` [E8]: its key
        changed, or it is gone."""
        pop = self._pairs.pop
        pop(code, None)
        pop(code | 1, None)
        pop(code | 2, None)
        pop(code | 3, None)

    def _forget(self, fd):
        # As the stdlib does, a registration the kernel refused or would not
        # modify (its fd was closed, say) is forgotten before the error is
        # raised.
        del self._fd_to_key[fd]
        self._fd_to_flags.pop(fd, None)
        self._odd_events.discard(fd)
        code = self._fd_to_code.pop(fd, None)
        if code is not None:
            self._drop_pairs(code)  # [E8]

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        if timeout is None:
            timeout_ns = -1
        elif timeout <= 0:  # TypeError for a non-number, as in _timeout_ns()
            timeout_ns = 0
        else:
            timeout_ns = self._timeout_ns(timeout)
        state = self._state
        try:
            n = _epoll_wait(state, timeout_ns)
        except BaseException:
            release(state)  # see SelectorBase.select
            raise
        if n >= _ONE:
            # One fd, in the result itself, which is also its key in the
            # kept results [E8]; the wait state is released already.
            pair = self._pairs.get(n)
            return [pair] if pair is not None else self._one(n)
        if n == 0:
            return []
        if n > 1 and not self._odd_events:
            try:
                # Readiness comes masked by each key's events (in C), so the
                # kept results serve without a Python loop [E8].
                return list(map(self._pairs.__getitem__, _unpack(self._codes, n)))
            except KeyError:
                return self._build_pairs(n, self._codes)
            finally:
                state.owner = 0  # its arrays are read
        return self._results_of(n, state, timeout_ns)

    def _build_pairs(self, n, codes):
        """The n events' results, building and keeping the missing ones [E8];
        events of registrations gone since the wait are dropped [E1]."""
        pairs = self._pairs
        ready = []
        for code in _unpack(codes, n):
            pair = pairs.get(code)
            if pair is None:
                key = self._key_of(code)
                if key is None:
                    continue
                pair = self._keep_pair(code, key)
            ready.append(pair)
        self._stale_unregistered += n - len(ready)
        return ready

    def _key_of(self, code):
        """The key of the registration `code` names, or None once it is gone
        (unregistered, or replaced by a new registration of its fd) [E1]."""
        fd = _fd_of(self._shared, code)
        return self._fd_to_key.get(fd) if fd >= 0 else None

    def _one(self, code):
        """select()'s list for one fd ready, reported as `code` [E8]."""
        key = self._key_of(code)
        if key is None:
            self._stale_unregistered += 1  # [E1]
            return []
        if key.fd in self._odd_events:
            # Masked again in Python, to fail or convert as the stdlib does.
            return [(key, code & 3 & key.events)]
        return [self._keep_pair(code, key)]

    def _keep_pair(self, code, key):
        pair = self._pairs[code] = (key, code & 3)
        if self._fd_to_key.get(key.fd) is not key:
            # Another thread changed the key meanwhile and may have dropped
            # this registration's results before we kept ours [E8].
            self._pairs.pop(code, None)
        return pair

    def _decode(self, n, state):
        return self._one(n) if n >= _ONE else super()._decode(n, state)

    def _collect(self, n, state):
        # The general path (keys whose events are not plain ints, waits
        # aside): masking again in Python raises as the stdlib does for the
        # odd ones.
        get = self._fd_to_key.get
        ready = []
        for fd, code in zip(_unpack(state.ready_fds, n), _unpack(state.codes, n)):
            key = get(fd)
            if key is not None:
                ready.append((key, code & 3 & key.events))
        self._stale_unregistered += n - len(ready)  # [E1]
        return ready

    def _timeout_too_large(self, timeout):
        # The stdlib's order: its own ceil(timeout * 1e3) overflows first;
        # then the closed epoll object refuses; then the range check.
        if self._epfd < 0 and math.isfinite(timeout * 1e3):
            return self._closed_error()
        return OverflowError("timeout is too large")

    def _wait_error(self, result):
        return self._closed_error() if self._epfd < 0 else oserror(-result)

    def _stale_only(self, state):
        """[E9] A wait returned nothing but events of a stale registration."""
        if state.stale_streak >= _STALE_STREAK:
            self._report_stale(state.stale_data)

    def _report_stale(self, data):
        fd = self._registered_fd(data)
        if fd in self._stale_reported:
            return
        self._stale_reported.add(fd)
        which = "a file" if fd is None else f"fd {fd} for a file"
        warnings.warn(
            StaleRegistrationWarning(
                f"epoll keeps reporting {which} that is no longer registered under that "
                f"number: fd {'?' if fd is None else fd} was closed (or unregistered after "
                "it was closed) while another fd still refers to its file, a "
                "dup() or a copy inherited by a child process (epoll(7), Q&A 6). "
                "reactor drops these events, but a level-triggered one wakes every "
                "wait at once; unregister fds before closing them"
            ),
            stacklevel=5,
        )  # the caller <- select() <- _results_of <- _stale_only <- here

    def _registered_fd(self, data):
        """The fd number the kernel holds the registration with epoll_data
        `data` under (from /proc/self/fdinfo), or None [E9]."""
        try:
            with open(f"/proc/self/fdinfo/{self._epfd}", encoding="ascii") as f:
                for line in f:
                    # "tfd: %8d events: %8x data: %16llx  pos:..." (fs/eventpoll.c)
                    fields = line.split()
                    if fields[:1] == ["tfd:"] and int(fields[5], 16) == data:
                        return int(fields[1])
        except (OSError, ValueError, IndexError):
            pass  # no /proc: the warning says "fd ?"
        return None

    def close(self) -> None:
        if self._epfd >= 0:
            self._epfd = -1
            # Closed now, or by a wait in another thread as it returns
            # (helpers.c): never while a wait may still use the number.
            lib.reactor_epoll_close(self._shared)
        self._fork_error = None  # closed like any other
        self._fd_to_code.clear()
        self._fd_to_flags.clear()
        self._odd_events.clear()
        self._pairs.clear()
        super().close()

    def __del__(self, _warn=warnings.warn):
        # An unclosed selector must not leak its epoll fd.
        epfd = getattr(self, "_epfd", -1)
        if epfd >= 0:
            self._epfd = -1
            lib.reactor_epoll_close(self._shared)
            _warn(
                f"unclosed selector {self!r} (its epoll fd {epfd} is closed now)",
                ResourceWarning,
                source=self,
            )

    def _after_fork_in_child(self):
        """[E2] Give this child its own epoll instance with the same keys."""
        super()._after_fork_in_child()
        inherited = lib.reactor_epoll_forked(self._shared)
        if inherited < 0:
            return  # closed in the parent (its fd too, now, in this child)
        epfd = lib.reactor_epoll_create()
        if epfd < 0:
            # Never go on with the parent's instance: every change would be
            # the parent's too.  Close it and say why at the next use.
            self._epfd = -1
            lib.reactor_epoll_close(self._shared)
            self._fork_error = oserror(-epfd)
            return
        self._epfd = self._shared.epfd = epfd
        for fd, key in self._fd_to_key.items():
            code = self._fd_to_code.get(fd)
            if code is None:
                continue  # a register() cut short by the fork, in another thread
            # A key whose fd is closed cannot be added again; in the parent
            # its registration went away with the file too, so the key stays
            # and unregister() works as it would there.
            lib.reactor_epoll_readd(
                self._shared, fd, code, self._fd_to_flags.get(fd, 0), key.events & _VALID_EVENTS
            )
        lib.reactor_close(inherited)
