"""The readiness layer under both loops: one selector, the wait that reads
for stream transports, and the dispatch of what a wait returned.

The callback Reactor (reactor._loop) and the asyncio EventLoop
(reactor._eventloop) each own a Poller.  Transports (reactor.net._transports)
reach the selector only through it: ``set_interest()`` and
``set_autoread()``.  In the other direction the Poller hands a transport
what it read through three entries of the transport (its sink):

- ``_fast_receive``: the protocol's data_received (or None while the
  transport's state asks for the slow path: reactor.net._streams [ST5]);
- ``_received(data, mask)``: bytes read for it, the slow path;
- ``_read_result(nread, view, offset, mask)``: the read found EOF (0) or an
  error (-errno), or bytes while paused.

Every other event goes to the loop's ``run_event(key, mask)``.

Facts this module relies on:

[W1] On reactor's EpollSelector the wait is reactor_epoll_wait_read()
     (reactor._epoll [E10]): stream transports register with
     REACTOR_AUTOREAD, and the wait itself recv()s what is readable for
     them into one buffer (one native call per wait, not one wait plus one
     recv per message).  Other selectors get a plain select() and every
     transport reads for itself.
[W2] A transport is listed in `readers` under its readable event's code
     while it is registered, so that bytes read for it reach its protocol
     with one dict lookup; an event with the write bit too takes the slow
     path, which also drains the write buffer.
[W3] One wait's results are dispatched before the next wait, in full,
     even when an exception (KeyboardInterrupt from a callback, a signal
     handler raising as the wait returned) leaves the dispatch: the batch
     stays `pending`, the next dispatch() goes on where it stopped, and no
     wait overwrites the read buffer before that.  Bytes read are never
     dropped, except for a transport closed before they could be handed
     over (as close() would make the kernel drop them).
[W4] Events are dispatched as the wait saw them ((key, mask) taken before
     any callback of the batch runs): bytes read for a transport reach it
     even if an earlier callback replaced its registration; a transport
     paused meanwhile keeps them for resume_reading().
"""

from __future__ import annotations

from math import ceil as _ceil

from . import _native
from ._epoll import EpollSelector

__all__ = ["Poller"]

_READ = 1
_WRITE = 2
_ONE = _native.lib.REACTOR_ONE
_NOT_READ = _native.lib.REACTOR_NOT_READ
# [W1] one buffer per Poller; each recv() asks for up to asyncio's 256 KiB.
_READ_BUFFER = 1 << 20
READ_CHUNK = 256 * 1024


class Poller:
    """A selector and the dispatch of its waits [W1]-[W4].

    `run_event(key, mask)` is called for every event that is not bytes
    read for a transport; it decides what a key's data means.
    """

    def __init__(self, selector, run_event):
        self.selector = selector
        self._run_event = run_event
        self.readers = {}  # [W2] readable event code -> transport
        self.read_chunk = READ_CHUNK
        self.reads = None
        # The batch still to dispatch [W3]: a wait's one-event code, or its
        # codes and lens, or a list of (key, mask) from a plain select().
        self._one = 0
        self._one_pair = None
        self._codes = self._lens = self._pairs = self._events = None
        self._index = self._offset = 0
        if type(selector) is EpollSelector:
            buffer = _native.ffi.new("char[]", _READ_BUFFER)
            self.reads = _native.ffi.new(
                "struct reactor_reads *",
                {"buf": buffer, "size": _READ_BUFFER, "chunk": READ_CHUNK},
            )
            self._buffer = buffer
            self._view = _native.ffi.buffer(buffer)

    @property
    def pending(self) -> bool:
        """A wait's results are not all dispatched yet [W3]."""
        return bool(self._one or self._codes is not None or self._events is not None)

    # -- registrations for transports ------------------------------------------

    def set_interest(self, transport, events):
        """Register, modify or unregister the transport's fd so that the
        selector watches exactly `events` (and reads for it where it can
        [W1]); transport._interest follows what the selector holds, also
        when the call fails."""
        old = transport._interest
        if events == old:
            return
        selector = self.selector
        fd = transport._fd
        try:
            if not events:
                if transport._read_code:
                    self._forget_reader(transport)
                selector.unregister(fd)
            elif transport._autoread:
                if old:
                    selector._modify_autoread(fd, events, transport._on_ready_cb)
                else:
                    selector._register_autoread(fd, events, transport._on_ready_cb)
                    self._list_reader(transport)
            elif old:
                selector.modify(fd, events, transport._on_ready_cb)
            else:
                selector.register(fd, events, transport._on_ready_cb)
        except BaseException:
            # A signal handler that raised as the call returned (the call
            # itself done), or a refusal: learn what the selector holds.
            key = (selector.get_map() or {}).get(fd)
            transport._interest = key.events if key is not None else 0
            if key is None and transport._read_code:
                self._forget_reader(transport)
            raise
        transport._interest = events

    def can_read_for(self, transport):
        """Whether the wait can read for `transport` [W1]: it asks for the
        whole chunk of each recv() (reactor.net._streams's read size)."""
        return self.reads is not None and transport._read_size >= self.read_chunk

    def set_autoread(self, transport, autoread):
        """Read for the transport in the wait, or stop (a buffered protocol
        reads itself)."""
        if autoread == transport._autoread:
            return
        transport._autoread = autoread
        if transport._interest:
            if not autoread and transport._read_code:
                self._forget_reader(transport)
            self.selector._modify_autoread(
                transport._fd, transport._interest, transport._on_ready_cb, autoread
            )
            if autoread:
                self._list_reader(transport)

    def _list_reader(self, transport):
        """[W2] a registration keeps its code until it ends."""
        code = self.selector._read_code(transport._fd)
        if code is not None:
            transport._read_code = code | _READ
            self.readers[transport._read_code] = transport

    def _forget_reader(self, transport):
        code, transport._read_code = transport._read_code, 0
        if self.readers.get(code) is transport:
            del self.readers[code]

    # -- waiting -----------------------------------------------------------------

    def wait(self, timeout):
        """Wait up to `timeout` seconds (None: no limit) and keep what the
        wait returned for dispatch().  Not while a batch is pending [W3]."""
        reads = self.reads
        if reads is None:
            self._events = self.selector.select(timeout) or None
            self._index = 0
            return
        timeout_ns = -1 if timeout is None else 0 if timeout <= 0 else _ceil(timeout * 1e9)
        selector = self.selector
        n = selector._read_wait(timeout_ns, reads, self._keep)  # [W3] if it raises
        if n >= _ONE:
            self._one = n
            # [W4] the (key, mask) the wait saw, in case a callback runs
            # before dispatch() (the asyncio loop's order).
            self._one_pair = selector._read_pair(n)
        elif n > 0:
            self._keep(n)
        elif n < 0:  # interrupted, buffers to grow, ...: the selector's rules
            self._events = selector._read_retry(n, timeout_ns) or None
            self._index = 0

    def _keep(self, count):
        """The wait's `count` events, for dispatch() [W4]."""
        if count > 0:
            self._codes, self._lens, self._pairs = self.selector._read_batch(count)
            self._index = self._offset = 0

    # -- dispatching -------------------------------------------------------------

    def dispatch(self):
        """Hand out what the last wait returned [W2]-[W4]."""
        code = self._one
        if code:
            self._one = 0
            nread = self.reads.first
            if nread > 0:
                transport = self.readers.get(code)
                deliver = transport._fast_receive if transport is not None else None
                if deliver is not None:  # the common case: straight to the protocol
                    try:
                        deliver(self._view[:nread])
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        _delivery_failed(transport, exc)
                    return
            pair = self._one_pair
            if pair is None:
                return
            if nread == _NOT_READ:
                self._run_event(*pair)
            else:
                self._hand_over(pair, code, nread, 0)
        elif self._codes is not None:
            self._dispatch_batch()
        elif self._events is not None:
            events = self._events
            run_event = self._run_event
            while self._index < len(events):
                key, mask = events[self._index]
                self._index += 1
                run_event(key, mask)
            self._events = None

    def _dispatch_batch(self):
        codes, lens, pairs = self._codes, self._lens, self._pairs
        reader = self.readers.get
        run_event = self._run_event
        view = self._view
        index, offset = self._index, self._offset
        count = len(codes)
        try:
            while index < count:
                code, pair, nread = codes[index], pairs[index], lens[index]
                index += 1  # consumed, whatever its callback does [W3]
                if nread > 0:  # read for a transport
                    start = offset
                    offset += nread
                    transport = reader(code)  # as it is now, after earlier callbacks
                    deliver = transport._fast_receive if transport is not None else None
                    if deliver is not None:
                        try:
                            deliver(view[start:offset])
                        except (SystemExit, KeyboardInterrupt):
                            raise
                        except BaseException as exc:
                            _delivery_failed(transport, exc)
                    elif pair is not None:
                        self._hand_over(pair, code, nread, start)
                elif pair is None:
                    continue
                elif nread == _NOT_READ:
                    run_event(*pair)
                else:  # EOF or an error, for a transport
                    self._hand_over(pair, code, nread, offset)
        except BaseException:
            self._index, self._offset = index, offset  # the rest, next time [W3]
            raise
        self._codes = self._lens = self._pairs = None

    def _hand_over(self, pair, code, nread, offset):
        """The slow path of bytes (or EOF, or an error) read for the
        transport whose registration is `pair`'s key."""
        key, mask = pair
        transport = key.data.__self__
        try:
            if nread > 0:
                transport._enter(transport._received, self._view[offset : offset + nread], mask)
            else:
                transport._enter(transport._read_result, nread, self._view, offset, mask)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._loop._report_error(exc, key.data, transport)

    def close(self):
        """Forget the batch and the readers; the selector is the loop's."""
        self._one = 0
        self._codes = self._lens = self._pairs = self._events = None
        self.readers.clear()


def _delivery_failed(transport, exc):
    """data_received() raised, called by the Poller: the transport's own
    path for a protocol that raises (reactor.net._transports [X4])."""
    where = getattr(transport._protocol, "data_received", None)
    try:
        transport._fatal_error(exc, where)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as error:
        transport._loop._report_error(error, where, transport)
