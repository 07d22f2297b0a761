"""Ring: an io_uring whose completions are callbacks on a loop.  (Long
because submitting, reaping, cancelling, closing and fork share one
record of operations in flight; the operations themselves are in _ops.py.)

The facts about io_uring this code relies on, [U1] to [U17], are in
docs/io_uring.md, one anchor per fact (docs/io_uring.md#u7 for [U7]); the
code points to them where it depends on one.

Contract: operations (see _ops.py) prepare SQEs; ONE path hands them to the
kernel and runs the completions, ``_submit_and_reap`` -- from the flush the
loop runs once per iteration after something was prepared [U2], and from
the eventfd's callback when completions arrive.  Callbacks run on the loop,
an exception in one goes to the loop's exception handler [U17].  ``close()``
cancels what is in flight and waits for it [U8]; a forked child's rings are
closed without touching the parent's [U9].
"""

from __future__ import annotations

import errno
import os
import time
import warnings
import weakref

from .._native import ffi, lib
from ._drivers import _driver_for
from ._ops import Operation, _cancel_done, _ignore, _Operations, _oserror, _size
from ._probe import _probe, _refusal_reason, _setup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["Ring", "CLOSE_TIMEOUT"]

# How long close() waits for the kernel to finish cancelled operations
# before giving their buffers up for lost [U8].  Cancellation of anything
# but a read or write already running in a worker is immediate.
CLOSE_TIMEOUT = 10.0

_MORE = lib.IORING_CQE_F_MORE
_ECANCELED = errno.ECANCELED
_EBUSY = errno.EBUSY
_EAGAIN = errno.EAGAIN
_EINTR = errno.EINTR
_unpack = ffi.unpack
# Enter-and-reap rounds one flush may make while completion callbacks keep
# preparing more [U2]; then the loop gets a turn.
_ROUNDS = 8
# Direct-descriptor slots a ring registers when first asked [U16].
_SLOTS = 128


_live_rings: "weakref.WeakSet[Ring]" = weakref.WeakSet()
# Records of operations close() gave up waiting for [U8]: the kernel may
# still write into their buffers, so they are never freed.
_abandoned: list = []


# -- the ring ----------------------------------------------------------------------


class Ring(_Operations):
    """An io_uring whose completions are callbacks on `loop` (a
    reactor.Reactor or an asyncio event loop).

    ``entries`` is the submission queue's size (rounded up to a power of
    two by the kernel), ``cq_entries`` the completion queue's (default four
    times as many).  Neither limits how many operations may be in flight
    [U4, U5].  Raises OSError when io_uring is refused here [U11].

    Every operation returns an Operation and calls ``callback(op)`` from the
    loop when done.  Arguments are checked before anything reaches the
    kernel: TypeError for a wrong type, ValueError for a value out of range;
    RuntimeError once the ring is closed (or inherited across fork [U9]).
    A Ring belongs to its loop's thread, as the loop does.
    """

    def __init__(self, loop: Any, entries: int = 256, *, cq_entries: Optional[int] = None) -> None:
        self._closed = True  # until set up: __del__ and close() have nothing to do
        self._forked = False
        self._eventfd = -1
        driver = _driver_for(loop)
        entries = _size(entries, "entries")
        if not 1 <= entries <= 32768:
            raise ValueError(f"entries must be in 1 ... 32768, not {entries}")
        if cq_entries is None:
            cq_entries = min(4 * entries, 65536)
        cq_entries = _size(cq_entries, "cq_entries")
        if not entries <= cq_entries <= 65536:
            raise ValueError(f"cq_entries must be in entries ... 65536, not {cq_entries}")
        cring = ffi.new("struct reactor_ring *")
        rc = _setup(cring, entries, cq_entries)
        if rc < 0:
            raise OSError(-rc, f"io_uring is not available: {_refusal_reason(-rc)}")
        efd = lib.reactor_eventfd(0, lib.EFD_CLOEXEC | lib.EFD_NONBLOCK)
        if efd < 0:
            lib.reactor_ring_close(cring)
            raise _oserror(-efd)
        rc = lib.reactor_ring_register(
            cring, lib.IORING_REGISTER_EVENTFD, ffi.new("int32_t *", efd), 1
        )
        if rc < 0:
            os.close(efd)
            lib.reactor_ring_close(cring)
            raise _oserror(-rc)
        self._cring = cring
        self._eventfd = efd
        self._driver = driver
        self._loop_ref = driver.loop_ref
        self._ops: dict[int, tuple] = {}  # user_data -> (callback(res, flags), keep)
        self._backlog: dict[int, tuple] = {}  # user_data -> (prep, args, entry) [U5]
        self._next_user_data = 1
        self._flush_scheduled = False
        self._draining = False  # in _submit_and_reap: it submits [U2]
        self._batch: Any = None  # completions reaped, being dispatched
        self._batch_size = cring.cq_entries
        self._sq_entries = cring.sq_entries
        self._user_data = ffi.new("uint64_t[]", self._batch_size)
        self._res = ffi.new("int32_t[]", self._batch_size)
        self._flags = ffi.new("uint32_t[]", self._batch_size)
        self._implicit = False  # a ring open_file() made: no ResourceWarning
        self._slots: Optional[list] = None  # free direct-descriptor slots [U16]
        self._slots_refused = False
        self._cancel_any = True  # IORING_ASYNC_CANCEL_ANY (5.19), until EINVAL
        self.supported_ops, self.features = _probe(cring)
        # Whether accept(multishot=True) gets one SQE for all connections [U13].
        self.multishot_accept = "SOCKET" in self.supported_ops
        self._closed = False
        try:
            driver.watch(efd, self._on_eventfd)
        except BaseException:
            self._closed = True
            os.close(efd)
            lib.reactor_ring_close(cring)
            raise
        _live_rings.add(self)

    # -- introspection ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sq_entries(self) -> int:
        return self._cring.sq_entries

    @property
    def cq_entries(self) -> int:
        return self._cring.cq_entries

    @property
    def setup_flags(self) -> int:
        return self._cring.setup_flags

    def in_flight(self) -> int:
        """Operations handed to the kernel (or waiting to be) and not done."""
        return len(self._ops) + len(self._backlog)

    def __repr__(self):
        state = "closed" if self._closed else f"fd={self._cring.fd} in_flight={self.in_flight()}"
        return f"<Ring {state}>"

    # -- submitting ---------------------------------------------------------------

    def _check_open(self):
        if self._closed:
            if self._forked:
                raise RuntimeError(
                    "this Ring belongs to the parent process (inherited "
                    "across fork); make a new one"
                )
            raise RuntimeError("the Ring is closed")

    def _start(self, prep, args, callback, keep):
        """Prepare an SQE with prep(cring, user_data, *args); callback(res,
        flags) runs on its CQE; `keep` lives until then [U6].  Returns the
        user_data."""
        if self._closed:
            self._check_open()
        if not self._flush_scheduled and not self._draining:
            # First, so that a loop that is gone or closed leaves nothing behind.
            self._schedule_flush()
        user_data = self._next_user_data
        self._next_user_data = user_data + 1
        entry = (callback, keep)
        if self._backlog:  # behind those already waiting, in order
            self._backlog[user_data] = (prep, args, entry)
        elif prep(self._cring, user_data, *args) == 0 or (
            self._enter_now() and prep(self._cring, user_data, *args) == 0
        ):  # [U5]
            self._ops[user_data] = entry
        else:
            self._backlog[user_data] = (prep, args, entry)
        return user_data

    def _start_chain(self, steps):
        """Prepare SQEs that must reach the kernel together (a chain linked
        with IOSQE_IO_HARDLINK in their flags [U15]): each step is (prep,
        args, callback, keep).  Their user_data, or None when they cannot
        go now in one piece (the SQ lacks room, or a backlog waits): the
        caller then does them one at a time."""
        if self._closed:
            self._check_open()
        cring = self._cring
        if not self._room(len(steps)):
            return None
        if not self._flush_scheduled and not self._draining:
            self._schedule_flush()
        user_datas = []
        for prep, args, callback, keep in steps:
            user_data = self._next_user_data
            self._next_user_data = user_data + 1
            if prep(cring, user_data, *args) < 0:  # pragma: no cover - room was checked
                raise RuntimeError("io_uring SQ full in the middle of a chain")
            self._ops[user_data] = (callback, keep)
            user_datas.append(user_data)
        return user_datas

    def _room(self, count):
        """Whether `count` SQEs can be prepared now, back to back (for a
        chain [U15]): no backlog, and room in the SQ, after submitting what
        it holds if need be."""
        if self._backlog:
            return False
        unsubmitted = lib.reactor_ring_unsubmitted
        if self._sq_entries - unsubmitted(self._cring) >= count:
            return True
        return self._enter_now() and self._sq_entries - unsubmitted(self._cring) >= count

    def _start_pair(self, prep, args, callback, prep2, args2, callback2, keep=None):
        """_start_chain() of two steps, the echo's send (whose memory `keep`
        holds [U6]) and the recv linked to it: False when they cannot go
        now."""
        if self._closed:
            self._check_open()
        if not self._room(2):
            return False
        if not self._flush_scheduled and not self._draining:
            self._schedule_flush()
        user_data = self._next_user_data
        self._next_user_data = user_data + 2
        cring = self._cring
        if prep(cring, user_data, *args) < 0 or prep2(cring, user_data + 1, *args2) < 0:
            raise RuntimeError("io_uring SQ full in the middle of a chain")  # pragma: no cover
        ops = self._ops
        ops[user_data] = (callback, keep)
        ops[user_data + 1] = (callback2, None)
        return True

    def _free_slots(self):
        """The free direct-descriptor slots [U16] (a list to pop from and
        append to), the table registered on first use; None where the
        kernel has none (before 5.19)."""
        if self._slots is None and not self._slots_refused:
            if lib.reactor_ring_register_slots(self._cring, _SLOTS) < 0:
                self._slots_refused = True
            else:
                self._slots = list(range(_SLOTS))
        return self._slots

    def _enter_now(self):
        """Submit what the SQ holds; True if the kernel took something."""
        rc = lib.reactor_ring_enter(self._cring, 0, -1)
        if rc > 0:
            return True
        if rc in (0, -_EBUSY, -_EAGAIN, -_EINTR):
            return False
        raise _oserror(-rc)

    # -- the one path to the kernel -----------------------------------------------
    #
    # Whatever was prepared reaches the kernel, and whatever completed runs,
    # through _submit_and_reap alone: from the flush the loop runs once per
    # iteration after something was prepared (_schedule_flush is the one
    # place that asks for it), and from the eventfd's callback when
    # completions arrive.  Besides it, only a full SQ enters early
    # (_enter_now, [U5]), submit() enters on request, and close() cancels
    # and waits [U8].

    def _schedule_flush(self):
        """Have the loop run _flush() soon, once [U2]; nothing once closed.
        RuntimeError when the loop is gone."""
        if not self._flush_scheduled and not self._closed:
            loop = self._loop_ref()
            if loop is None:
                raise RuntimeError("the Ring's event loop is gone")
            loop.call_soon(self._flush)
            self._flush_scheduled = True

    def _flush(self):
        """The once-per-iteration submission [U2]."""
        self._flush_scheduled = False
        if not self._closed:
            self._submit_and_reap()

    def _submit_and_reap(self):
        """Enter (submitting what is prepared), reap and dispatch; again, as
        long as the callbacks prepared more, up to _ROUNDS times [U2].
        Meanwhile _start() schedules no flush: the next round submits.
        Then what waits in the backlog moves into the SQ [U5], and what is
        still not submitted gets a flush next iteration."""
        cring, submit_reap = self._cring, lib.reactor_ring_submit_reap
        ud_array, res_array, flags_array, size = (
            self._user_data,
            self._res,
            self._flags,
            self._batch_size,
        )
        self._draining = True
        try:
            if self._batch is not None:  # a tail left by a BaseException [U17]
                self._dispatch()
            for _ in range(_ROUNDS):
                mark = self._next_user_data  # moves when a callback prepares an SQE
                n = submit_reap(cring, ud_array, res_array, flags_array, size)
                if n < 0:
                    if n in (-_EBUSY, -_EAGAIN, -_EINTR):
                        break  # the kernel is short of room, or a signal: next time
                    raise _oserror(-n)  # to the loop's exception handler (EBADR [U4])
                if n:
                    self._dispatch_reaped(n)
                    if n == size:
                        self._reap()  # more than a batch waits
                if self._closed or self._next_user_data == mark:
                    break
        finally:
            self._draining = False
        if not self._closed and (self._backlog or lib.reactor_ring_unsubmitted(cring)):
            if self._backlog:
                self._fill_from_backlog()
            self._schedule_flush()

    def _fill_from_backlog(self):
        """Move the backlog into the SQ, in order, entering when it is full,
        until the kernel takes no more [U5]."""
        backlog, cring, ops = self._backlog, self._cring, self._ops
        while backlog:
            user_data = next(iter(backlog))
            prep, args, entry = backlog[user_data]
            if prep(cring, user_data, *args) < 0:
                if not self._enter_now():
                    break  # still no room: after the next completions
                continue
            del backlog[user_data]
            ops[user_data] = entry

    def _reap(self):
        """Reap and dispatch without entering, until the CQ is empty."""
        cring, lib_reap = self._cring, lib.reactor_ring_reap
        ud_array, res_array, flags_array, size = (
            self._user_data,
            self._res,
            self._flags,
            self._batch_size,
        )
        while not self._closed:
            if self._batch is not None:  # a tail left by a BaseException [U17]
                self._dispatch()
                continue
            n = lib_reap(cring, ud_array, res_array, flags_array, size)
            if n <= 0:
                if n < 0 and n != -_EINTR:
                    raise _oserror(-n)  # EBADR: the kernel lost CQEs [U4]
                break
            self._dispatch_reaped(n)
            if n < size:
                break

    def _dispatch_reaped(self, n):
        """Dispatch the `n` completions the last reap copied out (one
        unpack per array, not one cdata access per completion)."""
        self._batch = zip(
            _unpack(self._user_data, n), _unpack(self._res, n), _unpack(self._flags, n)
        )
        self._dispatch()

    def submit(self) -> None:
        """Hand what was prepared to the kernel now, not at the end of this
        loop iteration."""
        self._check_open()
        self._enter_now()

    # -- completing ---------------------------------------------------------------

    def _on_eventfd(self):
        try:
            os.read(self._eventfd, 8)
        except BlockingIOError:
            pass  # drained by an earlier callback of this iteration
        if not self._closed:
            self._submit_and_reap()

    def _dispatch(self):
        """Run the callbacks of self._batch, the completions reaped [U17]."""
        ops, report = self._ops, self._driver.report
        batch = self._batch
        unknown = []
        try:
            for user_data, res, flags in batch:
                entry = ops.get(user_data) if flags & _MORE else ops.pop(user_data, None)
                if entry is None:
                    unknown.append(user_data)
                    continue
                try:
                    entry[0](res, flags)
                except Exception as exc:
                    report(exc, entry[0])
        except BaseException:
            # KeyboardInterrupt & co.: the rest of the batch stays in
            # self._batch for the next dispatch, which a flush makes [U17].
            self._schedule_flush()
            raise
        finally:
            if unknown:  # a bug here, not in the caller: say so
                report(
                    RuntimeError(
                        f"io_uring completions for unknown operations (user_data {unknown})"
                    ),
                    self._dispatch,
                )
        if self._batch is batch:
            self._batch = None

    # -- cancelling ------------------------------------------------------------------

    def _cancel(self, user_data, flags=0):
        """Cancel by user_data [U7]; False if the operation is not pending."""
        if self._closed:
            return False
        backlog_entry = self._backlog.pop(user_data, None)
        if backlog_entry is not None:  # never reached the kernel
            self._loop_ref().call_soon(backlog_entry[2][0], -_ECANCELED, 0)
            return True
        if user_data not in self._ops:
            return False
        self._start(lib.reactor_ring_prep_cancel, (user_data, flags), _cancel_done, None)
        return True

    def _orphan(self, user_data, callback=None):
        """Nobody waits for this operation any more: keep its buffers until
        the kernel is done with them [U6]; replace its callback (and
        whatever that held, such as an asyncio loop) with `callback`, if
        any (an open's, which must close the fd it may still produce)."""
        entry = self._ops.get(user_data)
        if entry is not None:
            self._ops[user_data] = (callback or _ignore, entry[1])
        elif user_data in self._backlog:
            del self._backlog[user_data]

    def cancel(self, op: Operation) -> bool:
        """Same as op.cancel()."""
        if op._ring is not self:
            raise ValueError("the operation belongs to another Ring")
        return op.cancel()

    def close(self) -> None:
        """Cancel every operation, wait for the kernel to finish them [U8]
        (their callbacks run here, with ECANCELED or their real results),
        then release the ring and its eventfd."""
        if self._closed:
            if self._forked and self._eventfd >= 0:  # [U9] the child's fds
                self._driver.unwatch(self._eventfd)
                os.close(self._eventfd)
                self._eventfd = -1
            return
        self._closed = True
        _live_rings.discard(self)
        try:
            self._cancel_all_and_wait()
        finally:
            self._release()

    def _cancel_all_and_wait(self):
        report = self._driver.report
        # Completions already reaped, not yet dispatched (close() called from
        # one of their callbacks): theirs first.
        if self._batch is not None:
            self._dispatch()
        backlog, self._backlog = self._backlog, {}
        for _prep, _args, entry in backlog.values():  # never reached the kernel
            try:
                entry[0](-_ECANCELED, 0)
            except Exception as exc:
                report(exc, entry[0])
        if not self._ops:
            return
        if not (
            self._cancel_any
            and self._prep_closing(
                lib.reactor_ring_prep_cancel,
                (0, lib.IORING_ASYNC_CANCEL_ANY | lib.IORING_ASYNC_CANCEL_ALL),
                self._cancel_all_done,
            )
        ):
            self._cancel_each()
        cring = self._cring
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while any(entry[0] is not _cancel_done for entry in self._ops.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            rc = lib.reactor_ring_enter(cring, 1, int(left * 1e9))
            if rc < 0 and rc not in (-_EINTR, -errno.ETIME, -_EBUSY, -_EAGAIN):
                report(_oserror(-rc), self.close)
                break
            n = lib.reactor_ring_reap(
                cring, self._user_data, self._res, self._flags, self._batch_size
            )
            if n > 0:
                self._dispatch_reaped(n)
        self._batch = None
        for user_data, entry in list(self._ops.items()):
            if entry[0] is _cancel_done:
                del self._ops[user_data]  # cancels own no buffer
        if self._ops:
            _abandoned.append(self._ops)
            self._ops = {}
            warnings.warn(
                f"{self!r}: {len(_abandoned[-1])} operations were still running "
                f"{CLOSE_TIMEOUT} s after close() cancelled them; their buffers "
                "are kept for the life of the process",
                RuntimeWarning,
                stacklevel=3,
            )

    def _prep_closing(self, prep, args, callback):
        """Prepare an SQE while closing (no flush: close() enters itself)."""
        user_data = self._next_user_data
        self._next_user_data = user_data + 1
        while prep(self._cring, user_data, *args) < 0:
            if lib.reactor_ring_enter(self._cring, 0, -1) <= 0:
                return False  # the kernel takes nothing: close() will time out
        self._ops[user_data] = (callback, None)
        return True

    def _cancel_each(self):
        """One IORING_OP_ASYNC_CANCEL per operation (before 5.19, which
        brought IORING_ASYNC_CANCEL_ANY)."""
        for user_data, entry in list(self._ops.items()):
            if entry[0] is not _cancel_done and entry[0] is not self._cancel_all_done:
                if not self._prep_closing(
                    lib.reactor_ring_prep_cancel, (user_data, 0), _cancel_done
                ):
                    return

    def _cancel_all_done(self, res, flags):
        if res == -errno.EINVAL:  # no IORING_ASYNC_CANCEL_ANY: before 5.19
            self._cancel_any = False
            self._cancel_each()

    def _release(self):
        if self._eventfd >= 0:
            self._driver.unwatch(self._eventfd)
            os.close(self._eventfd)
            self._eventfd = -1
        lib.reactor_ring_close(self._cring)
        self._flush_scheduled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_closed", True):
            if getattr(self, "_forked", False) and self._eventfd >= 0:
                os.close(self._eventfd)
                self._eventfd = -1
            return
        implicit = self._implicit
        try:
            self.close()
        finally:
            if not implicit:
                _warn(f"unclosed Ring {self!r}", ResourceWarning, source=self)

    def _after_fork_in_child(self):
        """[U9]"""
        if self._closed:
            return
        self._closed = self._forked = True
        lib.reactor_ring_forget(self._cring)
        self._ops = {}
        self._backlog = {}
        self._batch = None
        fresh = lib.reactor_eventfd(0, lib.EFD_CLOEXEC | lib.EFD_NONBLOCK)
        if fresh >= 0:
            os.dup2(fresh, self._eventfd, inheritable=False)
            os.close(fresh)
        else:  # out of fds: better no eventfd than the parent's
            os.close(self._eventfd)
            self._eventfd = -1


def _after_fork_in_child():
    for ring in list(_live_rings):
        ring._after_fork_in_child()
    _live_rings.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
