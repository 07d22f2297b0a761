"""BufferRing: buffers the kernel picks for recv (IORING_REGISTER_PBUF_RING,
Linux 5.19) [U12].  The kernel facts [U*] are in docs/io_uring.md."""

from __future__ import annotations

import mmap

from .._native import ffi, lib
from ._ops import _fd, _msg_flags, _oserror, _size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .._base import FileDescriptorLike
    from ._ops import Operation
    from ._ring import Ring

__all__ = ["BufferRing"]


class BufferRing:
    """`count` buffers of `size` bytes that the kernel picks from when a
    recv() of this group completes (IORING_REGISTER_PBUF_RING, 5.19)
    [U12], so memory follows the data in flight, not the number of
    connections waiting.

    ``recv(sock, callback)``'s result() is ``(buffer_id, nbytes)``: the
    data is ``view(buffer_id, nbytes)``, until ``give_back(buffer_id)``
    returns the buffer to the kernel (every buffer taken must be given
    back).  At EOF the result is ``(None, 0)``.  When data came and every
    buffer was taken it raises OSError(ENOBUFS) [U12].  OSError(EINVAL)
    from the constructor: the kernel has no buffer rings (before 5.19).
    """

    def __init__(self, ring: Ring, count: int = 256, size: int = 65536, group: int = 0) -> None:
        self._ring = None
        ring._check_open()
        count, size = _size(count, "count"), _size(size, "size")
        if not 1 <= count <= 32768 or count & (count - 1):
            raise ValueError(f"count must be a power of two in 1 ... 32768, not {count}")
        if not 1 <= size or count * size > 1 << 32:
            raise ValueError("size must be >= 1 and count * size at most 4 GiB")
        if not isinstance(group, int) or not 0 <= group <= 0xFFFF:
            raise ValueError(f"group must be in 0 ... 65535, not {group!r}")
        entry = ffi.sizeof("struct io_uring_buf")
        # Anonymous mmaps: page-aligned, as the kernel requires of the
        # entries, and ours (Python's) for as long as anything refers to
        # them; the kernel pins the pages while registered [U6].
        self._entries_map = mmap.mmap(-1, max(count * entry, mmap.PAGESIZE))
        self._pool_map = mmap.mmap(-1, count * size)
        self._entries = ffi.from_buffer(self._entries_map)
        self._pool = ffi.from_buffer(self._pool_map)
        self._view = memoryview(self._pool_map)
        self._count, self._size, self._group = count, size, group
        self._ids = ffi.new("uint16_t[]", count)
        self._held = bytearray(count)  # 1: picked by a recv, not given back yet
        rc = lib.reactor_pbuf_register(ring._cring, self._entries, count, group)
        if rc < 0:
            raise _oserror(-rc)
        self._ring = ring
        for buffer_id in range(count):
            self._ids[buffer_id] = buffer_id
        lib.reactor_pbuf_give(self._entries, count, self._pool, size, self._ids, count)
        self.taken = 0  # buffers handed out and not given back

    @property
    def size(self) -> int:
        return self._size

    @property
    def count(self) -> int:
        return self._count

    def recv(
        self,
        sock: FileDescriptorLike,
        callback: Callable[[Operation], Any],
        flags: int = 0,
        *,
        poll_first: bool = True,
    ) -> Operation:
        """A recv whose buffer the kernel picks from this group when data
        comes: result() is (buffer_id, nbytes), or (None, 0) at EOF.  With
        poll_first (the default) it waits for data before it picks, so that
        ENOBUFS means "data came, no buffer free"; without, a recv whose data
        is already there costs no poll, and one made while the pool is empty
        fails with ENOBUFS at once [U12]."""
        ring = self._ring
        if ring is None:
            raise RuntimeError("the BufferRing is closed")
        return ring._op(
            callback,
            self._picked,
            lib.reactor_ring_prep_ext,
            (
                lib.IORING_OP_RECV,
                _fd(sock),
                ffi.NULL,
                0,
                0,
                _msg_flags(flags),
                ffi.NULL,
                lib.IORING_RECVSEND_POLL_FIRST if poll_first else 0,
                lib.IOSQE_BUFFER_SELECT,
                self._group,
            ),
            self,
        )

    def _picked(self, res, flags):
        if flags & lib.IORING_CQE_F_BUFFER:
            buffer_id = flags >> lib.IORING_CQE_BUFFER_SHIFT
            self._take(buffer_id)
            return buffer_id, res
        return None, res

    def _take(self, buffer_id):
        """A CQE says the kernel picked `buffer_id` (IORING_CQE_F_BUFFER):
        it is the caller's until give_back()."""
        self._held[buffer_id] = 1
        self.taken += 1

    def view(self, buffer_id: int, nbytes: int) -> memoryview:
        """The first `nbytes` of buffer `buffer_id` (no copy)."""
        start = buffer_id * self._size
        return self._view[start : start + nbytes]

    def give_back(self, buffer_id: int) -> None:
        """Return a buffer the kernel picked to the kernel; ValueError for
        one that is not out (given back twice, it would be handed to two
        receives at once)."""
        if not isinstance(buffer_id, int) or not 0 <= buffer_id < self._count:
            raise ValueError(f"no buffer {buffer_id!r} in this group")
        if not self._held[buffer_id]:
            raise ValueError(f"buffer {buffer_id} is not taken (given back twice?)")
        self._held[buffer_id] = 0
        self.taken -= 1
        if self._ring is not None and not self._ring._closed:
            ids = self._ids
            ids[0] = buffer_id
            lib.reactor_pbuf_give(self._entries, self._count, self._pool, self._size, ids, 1)

    def close(self) -> None:
        """Unregister the group (its memory goes when nothing refers to it)."""
        ring, self._ring = self._ring, None
        if ring is not None and not ring._closed:
            rc = lib.reactor_pbuf_unregister(ring._cring, self._group)
            if rc < 0:
                raise _oserror(-rc)
