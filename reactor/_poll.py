"""PollSelector: the stdlib's PollSelector on a pollfd array kept in C memory.

Facts about poll this module relies on:

[P1] poll() takes the whole interest list on every call, and the kernel
     scans it all: the cost grows with the number of registered fds, ready
     or not.  We keep one `struct pollfd` array between calls (an entry is
     removed by moving the last entry into its place) and scan revents in C,
     so a call does no Python work per idle fd.
[P2] The kernel holds nothing between calls, so there is no stale state:
     fd reuse and fork() need no special care (unlike epoll).
[P3] A registered fd that is not open is reported with POLLNVAL; HUP and ERR
     are reported whatever `events` asks for.  Like the stdlib we report
     them as readable and writable, masked by the key's events.
[P4] poll() takes a timeout in ms (the stdlib rounds up to 1 ms); ppoll()
     takes a timespec, so timeouts are exact to the nanosecond.
[P5] The kernel reads the pollfd array when poll() starts and writes each
     entry's revents back when it returns.  Another thread may unregister
     (moving the last entry into the hole) or grow the array meanwhile, so a
     wait polls a copy of its own, taken under the list's lock, and reads
     fds and revents from that copy.
"""

from __future__ import annotations

from selectors import EVENT_READ, EVENT_WRITE, SelectorKey


from ._base import SelectorBase, keep_alive, make_key

from ._native import ffi, lib

TYPE_CHECKING = False  # see _base.py
if TYPE_CHECKING:
    from typing import Any

    from ._base import FileDescriptorLike

_INTEREST = (0, lib.POLLIN, lib.POLLOUT, lib.POLLIN | lib.POLLOUT)
_VALID_EVENTS = EVENT_READ | EVENT_WRITE
_READ_BITS = 0xFFFF & ~lib.POLLOUT  # [P3]
_WRITE_BITS = 0xFFFF & ~lib.POLLIN
assert (EVENT_READ, EVENT_WRITE) == (1, 2)  # the bits reactor._native writes
_EGROW = lib.REACTOR_EGROW
_ENOENT = lib.ENOENT


class PollSelector(SelectorBase):
    """Poll-based selector."""

    _native_wait = staticmethod(lib.reactor_poll_wait)

    def __init__(self):
        super().__init__()
        self._fd_to_index = {}  # fd -> its entry in the pollfd array
        self._list = self._locked = ffi.new("struct reactor_pollfds *")
        self._pollfds = None
        self._grow(64)
        self._state = self._new_wait()

    def _grow(self, capacity):
        pollfds = ffi.new("struct pollfd[]", capacity)
        rc = lib.reactor_poll_set_array(self._list, pollfds, capacity)
        assert rc == 0, rc  # capacity only grows
        self._pollfds = pollfds  # the old array is unused from here [P5]

    def _new_wait(self):
        state = ffi.new(
            "struct reactor_poll *",
            {"list": self._list, "read_bits": _READ_BITS, "write_bits": _WRITE_BITS},
        )
        self._size_wait(state)
        return state

    def _size_wait(self, state):
        capacity = self._list.capacity  # at least nfds [P5]
        work = ffi.new("struct pollfd[]", capacity)
        ready_fds = ffi.new("int[]", capacity)
        ready = ffi.new("uint32_t[]", capacity)
        state.work, state.ready_fds, state.ready = work, ready_fds, ready
        state.capacity = capacity
        keep_alive(state, work=work, ready_fds=ready_fds, ready=ready)

    def _buffer_sizes(self):
        """Entries in the pollfd array and in the main wait state's copy of
        it (for tests: both follow the registrations [P1])."""
        return {"entries": self._list.capacity, "wait": self._state.capacity}

    def _select_aside(self, timeout_ns):
        # As the stdlib's, which refuses a second poll() on one object, from
        # another thread or from a signal handler during the first.
        raise RuntimeError("concurrent poll() invocation")

    def _set_events(self, fd, events):
        """New events for fd's entry in the pollfd array."""
        rc = lib.reactor_poll_set_events(
            self._list, self._fd_to_index[fd], fd, _INTEREST[events & _VALID_EVENTS]
        )
        if rc:
            raise self._lost_entry(fd)

    def _lost_entry(self, fd):
        # -ENOENT: _fd_to_index and the array disagree, which only
        # registrations changed from two threads at once can do (README,
        # "Threads": not supported).  Said, not ignored.
        return RuntimeError(
            f"PollSelector: fd {fd} is not at index "
            f"{self._fd_to_index.get(fd)} of its pollfd array (were "
            "registrations changed from two threads at once?)"
        )

    def _add(self, fd, events):
        if fd in self._fd_to_index:
            # Still in the array from before close() (see there).
            self._set_events(fd, events)
            return
        # An fd that does not fit a C int fails here (OverflowError), before
        # anything is recorded, as the stdlib's poll.register() does.
        index = lib.reactor_poll_add(self._list, fd, _INTEREST[events])
        while index == _EGROW:
            self._grow(2 * self._list.capacity)
            index = lib.reactor_poll_add(self._list, fd, _INTEREST[events])
        self._fd_to_index[fd] = index

    def _remove(self, fd):
        index = self._fd_to_index[fd]
        moved_fd = lib.reactor_poll_remove(self._list, index, fd)
        if moved_fd == -_ENOENT:
            raise self._lost_entry(fd)
        del self._fd_to_index[fd]
        if moved_fd >= 0:
            self._fd_to_index[moved_fd] = index

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> SelectorKey:
        key = self._get_key_for_modify(fileobj)
        changed = False
        if events != key.events:
            # No syscall: the next poll() reads the new mask [P1].
            self._set_events(key.fd, events)
            changed = True
        if data != key.data:
            changed = True
        if changed:
            key = make_key(key.fileobj, key.fd, events, data)
            self._fd_to_key[key.fd] = key
        return key

    def close(self) -> None:
        # As the stdlib's does, a closed PollSelector forgets its keys but
        # keeps its pollfd array: it stays usable, and a later select() still
        # polls the fds registered before (reporting nothing for them).
        super().close()
