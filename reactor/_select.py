"""SelectSelector: the stdlib's SelectSelector without the 1024-fd ceiling.

Facts about select this module relies on:

[SE1] FD_SETSIZE (1024) is only the size of glibc's `fd_set` type.  The
     kernel reads `nfds` bits from each set, whatever their size, so sets
     sized at run time (arrays of unsigned long) watch any fd.  glibc's
     FD_SET/FD_ISSET abort past 1023 under _FORTIFY_SOURCE, so
     reactor._native sets the bits itself.  The stdlib raises ValueError for
     an fd >= 1024.
[SE2] select() overwrites its sets, so we keep the interest sets between
     calls and reactor._native copies them to scratch sets before each wait,
     under the sets' lock: another thread may change or grow them while the
     wait blocks, and the kernel only ever writes to the wait's own sets.
[SE3] The kernel reads only as many bits as the process's fd table holds and
     fails with EBADF for a bit set on a closed fd inside it; bits past the
     table come back untouched, so reactor._native checks that the highest
     fd is open (one fcntl) and fails with EBADF otherwise.  No fd can be
     open at or above fs.nr_open, so such an fd is refused with ValueError at
     select() time, as the stdlib refuses fds >= 1024; registering it works,
     as in the stdlib.
[SE4] The kernel's cost grows with nfds, the highest registered fd + 1, so
     that is kept exact (found in C when the highest fd leaves).  The sets
     themselves must hold a bit for every fd number up to the highest (1 bit
     per number: 128 KiB per set at fs.nr_open = 2**20); the arrays of
     results, which take 8 bytes per ready fd, are sized by the number of
     fds in the sets instead (doubling as it grows).
[SE5] select() takes a timeval (microseconds); pselect() takes a timespec,
     so timeouts are exact to the nanosecond.
"""

from __future__ import annotations


from ._base import FD_LIMIT, INT_MAX, SelectorBase, keep_alive, make_key
from selectors import EVENT_READ, EVENT_WRITE, SelectorKey

from ._native import ffi, lib

TYPE_CHECKING = False  # see _base.py
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

    from ._base import FileDescriptorLike

_BITS = lib.REACTOR_NFDBITS
_VALID_EVENTS = EVENT_READ | EVENT_WRITE


# Result entries of a new wait state; they double as registrations grow [SE4].
_FIRST_READY = 16


class SelectSelector(SelectorBase):
    """Select-based selector; watches fds >= 1024 too."""

    # The stdlib's limit: select.select() takes int64 nanoseconds.
    _TIMEOUT_LIMIT_NS = 2**63 - 1

    _native_wait = staticmethod(lib.reactor_select_wait)

    def __init__(self):
        super().__init__()
        self._out_of_range = set()  # registered fds >= FD_LIMIT [SE3]
        self._sets = self._locked = ffi.new("struct reactor_fdsets *")
        self._capacity = 0
        self._grow(1024)
        self._state = self._new_wait()

    def _grow(self, nbits):
        """Size the interest sets for fds below nbits [SE2]."""
        words = (nbits + _BITS - 1) // _BITS
        readers = ffi.new("unsigned long[]", words)
        writers = ffi.new("unsigned long[]", words)
        rc = lib.reactor_select_set_arrays(self._sets, readers, writers, words * _BITS)
        assert rc == 0, rc  # capacity only grows
        self._arrays = (readers, writers)  # the old ones are unused from here
        self._capacity = words * _BITS  # a copy of self._sets.capacity

    def _new_wait(self):
        state = ffi.new("struct reactor_select *", {"sets": self._sets})
        self._size_wait(state)
        return state

    def _size_wait(self, state):
        # Scratch sets for every fd the interest sets can hold [SE2], results
        # for as many fds as they hold [SE4] (bits set before close() stay
        # and count too).
        nbits = self._sets.capacity
        if state.capacity != nbits:
            words = nbits // _BITS
            rwork = ffi.new("unsigned long[]", words)
            wwork = ffi.new("unsigned long[]", words)
            state.rwork, state.wwork, state.capacity = rwork, wwork, nbits
            keep_alive(state, rwork=rwork, wwork=wwork)
        count = self._sets.count
        if state.ready_capacity < max(count, 1):
            length = max(_FIRST_READY, 2 * state.ready_capacity, count)
            ready_fds = ffi.new("int[]", length)
            ready = ffi.new("uint32_t[]", length)
            state.ready_fds, state.ready, state.ready_capacity = ready_fds, ready, length
            keep_alive(state, ready_fds=ready_fds, ready=ready)

    def _buffer_sizes(self):
        """Bits in the interest sets and entries in the main wait state's
        arrays (for tests: result arrays follow the registrations [SE4])."""
        return {
            "fd_bits": self._capacity,
            "wait_bits": self._state.capacity,
            "ready": self._state.ready_capacity,
        }

    def _add(self, fd, events):
        capacity = self._capacity
        if fd >= capacity:
            if fd >= FD_LIMIT:
                self._out_of_range.add(fd)
                return
            self._grow(min(max(fd + 1, 2 * capacity), FD_LIMIT))
        rc = lib.reactor_select_add(self._sets, fd, events & _VALID_EVENTS)
        assert rc == 0, rc  # 0 <= fd < capacity

    def _remove(self, fd):
        if fd >= self._capacity:
            self._out_of_range.discard(fd)
            return
        rc = lib.reactor_select_remove(self._sets, fd)
        assert rc == 0, rc  # 0 <= fd < capacity

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> SelectorKey:
        # The stdlib's generic modify, kept as is: a mask change is an
        # unregister then a register (so an invalid mask raises ValueError
        # after the old registration is gone, and the new key holds the
        # `fileobj` given here).
        key = self._get_key_for_modify(fileobj)
        if events != key.events:
            self.unregister(fileobj)
            key = self.register(fileobj, events, data)
        elif data != key.data:
            key = make_key(key.fileobj, key.fd, key.events, data)
            self._fd_to_key[key.fd] = key
        return key

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        if self._out_of_range:
            if timeout is not None:
                self._timeout_ns(timeout)  # the stdlib's timeout errors come first
            if max(self._out_of_range) > INT_MAX:  # the stdlib's fd conversion fails first
                raise OverflowError("Python int too large to convert to C int")
            raise ValueError(
                f"file descriptor {min(self._out_of_range)} out of "
                f"range in select() (fs.nr_open is {FD_LIMIT})"
            )
        return super().select(timeout)

    def close(self) -> None:
        # As the stdlib's does, a closed SelectSelector forgets its keys but
        # keeps its fd sets: it stays usable, and a later select() still
        # waits on the fds registered before (and fails if one is closed).
        super().close()
