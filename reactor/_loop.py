"""Reactor: the IO-multiplexing chapter's dispatch loop, made complete.

The chapter's loop is ``for key, mask in selector.select():
key.data(key.fileobj, mask)``.  The Reactor keeps that shape (a readiness
callback is the key's data and is called as ``callback(fileobj, mask)``) and
adds what a program needs around it: timers, callbacks scheduled from the
loop or from other threads, signal handlers, and one place where callback
errors go.  (Long because the facts below, about signals and fork() above
all, are its half; the code is one class.)

Facts this module relies on:

[L1] One iteration: wait (no longer than the next timer, not at all when
     callbacks are ready), dispatch the IO events, then run the callbacks
     that were ready before the dispatch and the timers that are due.
     Anything scheduled during the iteration runs in the next one, so a
     callback that reschedules itself cannot starve IO.
[L2] An IO event is delivered only if its key is still the fd's current key
     and its file object still has that fd: a callback earlier in the same
     batch may have unregistered, re-registered or closed it.  (A bare fd
     closed with os.close() cannot be told from an open one without a
     syscall.)  Level-triggered readiness skipped this way is reported again
     by the next wait.
[L3] Timers never fire early: a timer runs once monotonic() >= its time.
     The selectors honour timeouts to the nanosecond, so a timer 0.2 ms
     away is waited for 0.2 ms, not 1 ms.
[L4] call_soon_threadsafe() wakes a blocked wait by writing an eventfd.
     Only the first caller after the loop last woke writes: the loop drains
     the eventfd, then clears the flag (the other order loses a wakeup
     written between the two).
[L5] Signals reach the loop through signal.set_wakeup_fd(): the C-level
     handler writes the signal number to our socket, and the handler runs
     as a callback.  A wakeup fd installed by someone else is never
     replaced: add_signal_handler() raises RuntimeError instead.
[L6] The wakeup fd outlives a Reactor dropped without close(): Python's C
     handler would go on writing to that fd number, closed and perhaps
     reused by then.  Collection uninstalls it (and restores the signals'
     dispositions) when it runs in the main thread, where signal functions
     work; elsewhere it leaves the socketpair open, so the number is never
     reused, and says so in its ResourceWarning.
[L7] After fork() the child shares the parent's eventfd and signal
     socketpair: the child draining either would steal the parent's
     wakeups.  The child gives each live Reactor new ones, under the same fd
     numbers (dup2), and installs its wakeup fd again.  asyncio's own fork
     hook (Python 3.12+) uninstalls the wakeup fd in every child, and hooks
     run in the order they were registered, so ours must come after
     asyncio's, without importing asyncio (which costs more than all of
     reactor): if asyncio is imported after this module, our hook is
     registered again just before the next fork (a `before` hook), and the
     first one stands down.  The worker pool (_run_in_thread()) is
     dropped in the child: its threads stayed in the parent.
[L8] A selector holding kernel state (one with a fileno(): epoll) is shared
     with the parent after fork(): any change the child makes to it changes
     the parent's registrations (epoll(7); a child's EPOLL_CTL_DEL of the
     wakeup fd cost the parent its wakeups).  reactor's EpollSelector
     rebuilds itself in the child ([E2]).  Any other such selector (the
     stdlib's EpollSelector, say) is replaced in the child by a new one of
     its class holding the same keys; the inherited one is closed without
     unregistering anything, which leaves the parent's registrations alone.
[L9] Due timers join the ready queue as soon as the wait returns, and the
     ready queue is run from its head, so that an exception that leaves the
     loop (KeyboardInterrupt, SystemExit from a callback) loses nothing: what
     had not run yet runs in the next iteration, as in asyncio.
[L11] The wait and the dispatch of its results are reactor._poller's
     ([W1]-[W4]): on reactor's EpollSelector the wait itself reads for
     stream transports and the Poller hands the bytes to them; every other
     event comes back to the Reactor's _run_event() ([L2]).  A batch that an
     exception interrupted is finished before the next wait.
[L12] run_once() and run() are refused inside a callback of the same
     Reactor: a nested iteration would wait again while the outer batch is
     still being dispatched.
[L10] An exception from a callback must never pass unseen: the default
     handle_exception() logs it with its traceback on the "reactor" logger,
     naming the callback, and reactor adds no handler of its own, so that
     with logging unconfigured Python's last-resort handler prints it to
     stderr.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import numbers
import os
import signal
import socket
import selectors
import sys
import threading
import warnings
import weakref
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import _native

if TYPE_CHECKING:
    from ._base import FileDescriptorLike
from ._base import SelectorBase
from ._epoll import EpollSelector
from ._events import Handle, TimerHandle, check_callable as _check_callable, describe, logger
from ._poller import Poller

__all__ = ["Reactor", "Handle", "TimerHandle"]


_EVENT_READ = 1
_WAKE = (1).to_bytes(8, "little")
# Longest single wait: a timer days away (or at infinity) must not overflow
# the selectors' timeout limits.
_MAX_WAIT = 86400.0


def _signal_noop(signum, frame):
    # The C-level handler has already written the signal number to the
    # wakeup fd [L5]; the Python-level one only keeps the default action away.
    pass


_live_reactors: "weakref.WeakSet[Reactor]" = weakref.WeakSet()


def _new_eventfd():
    fd = _native.lib.reactor_eventfd(0, _native.lib.EFD_CLOEXEC | _native.lib.EFD_NONBLOCK)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd))
    return fd


class Reactor:
    """A callback dispatch loop on any selector (default: DefaultSelector)."""

    def __init__(self, selector: Optional[selectors.BaseSelector] = None) -> None:
        self._selector = EpollSelector() if selector is None else selector
        # Our selectors expose their fd -> key dict, so that [L2] costs a
        # dict lookup; any other BaseSelector goes through get_map().
        self._fd_to_key = getattr(self._selector, "_fd_to_key", None)
        self._poller = Poller(self._selector, self._run_event)  # [L11]
        self._iterating = False  # [L12]
        self._ready: collections.deque[Handle] = collections.deque()
        self._timers: list[TimerHandle] = []
        self._timer_sequence = itertools.count()
        self._cancelled_timers = 0
        self._stopping = False
        self._closed = False
        self._thread_id: Optional[int] = None
        self._wakeup_pending = False
        self._signal_handlers: dict[int, tuple[Handle, Any]] = {}
        self._signal_sockets: Optional[tuple[socket.socket, socket.socket]] = None
        self._wakeup_fd = -1
        self._wakeup_lock = threading.Lock()
        self._executor = None  # worker threads for _run_in_thread()
        self._transports: dict[int, Any] = {}  # fd -> transport (reactor.net._transports [X6])
        self._wakeup_fd = _new_eventfd()
        self._selector.register(self._wakeup_fd, _EVENT_READ, self._on_wakeup)
        _live_reactors.add(self)

    # -- readiness callbacks -------------------------------------------------

    def register(
        self, fileobj: FileDescriptorLike, events: int, callback: Callable[[Any, int], Any]
    ) -> selectors.SelectorKey:
        """Call ``callback(fileobj, mask)`` whenever fileobj is ready."""
        self._check_open()
        _check_callable(callback)
        return self._selector.register(fileobj, events, callback)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, callback: Callable[[Any, int], Any]
    ) -> selectors.SelectorKey:
        self._check_open()
        _check_callable(callback)
        return self._selector.modify(fileobj, events, callback)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        self._check_open()
        return self._selector.unregister(fileobj)

    @property
    def selector(self) -> selectors.BaseSelector:
        return self._selector

    # -- scheduling ----------------------------------------------------------

    def time(self) -> float:
        """The loop's clock: time.monotonic()."""
        return monotonic()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Run ``callback(*args)`` in the next iteration, in call order."""
        self._check_open()
        _check_callable(callback)
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """call_soon() from any thread; wakes the loop if it is waiting [L4]."""
        self._check_open()
        _check_callable(callback)
        handle = Handle(callback, args)
        self._ready.append(handle)
        if not self._wakeup_pending:
            self._wakeup_pending = True
            # Under the lock close() takes: never write to the fd number
            # once close() has released it (it may be reused by then).
            with self._wakeup_lock:
                if self._wakeup_fd >= 0:
                    try:
                        os.write(self._wakeup_fd, _WAKE)
                    except BlockingIOError:
                        pass  # the counter is saturated: the loop is awake anyway
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` once `delay` seconds have passed."""
        return self.call_at(monotonic() + delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` once time() >= when [L3]."""
        self._check_open()
        _check_callable(callback)
        if not isinstance(when, numbers.Real):
            raise TypeError(f"when must be a number, not {type(when).__name__}")
        when = float(when)  # OverflowError for an int past float's range
        if when != when:  # NaN would never compare due
            raise ValueError("when must be a number, not NaN")
        timer = TimerHandle(when, callback, args, self, next(self._timer_sequence))
        heapq.heappush(self._timers, timer)
        return timer

    def _timer_cancelled(self):
        self._cancelled_timers += 1
        if self._cancelled_timers > 64 and self._cancelled_timers * 2 > len(self._timers):
            # Mostly cancelled: rebuild instead of letting them pile up.
            # In place: an iteration in progress holds this list.
            self._timers[:] = [t for t in self._timers if not t._cancelled]
            heapq.heapify(self._timers)
            self._cancelled_timers = 0

    # -- signals -------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop when signal `signum` arrives.

        Main thread only (as signal.signal()).  Raises RuntimeError if a
        wakeup fd was installed by someone else [L5].
        """
        self._check_open()
        _check_callable(callback)
        if self._signal_sockets is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            try:
                previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            except ValueError:
                reader.close()
                writer.close()
                raise
            if previous != -1:
                signal.set_wakeup_fd(previous)
                reader.close()
                writer.close()
                raise RuntimeError(
                    f"a signal wakeup fd ({previous}) is already installed by someone "
                    "else (another event loop?); the Reactor will not replace it"
                )
            self._signal_sockets = (reader, writer)
            self._selector.register(reader, _EVENT_READ, self._on_signal_bytes)
        try:
            old = signal.signal(signum, _signal_noop)
        except (OSError, ValueError):
            if not self._signal_handlers:
                self._close_signal_sockets()
            raise
        # Keep the disposition from before our first handler for this signal.
        if signum in self._signal_handlers:
            old = self._signal_handlers[signum][1]
        self._signal_handlers[signum] = (Handle(callback, args), old)

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the signal's previous disposition; False if none was set."""
        entry = self._signal_handlers.pop(signum, None)
        if entry is None:
            return False
        signal.signal(signum, entry[1])
        if not self._signal_handlers:
            self._close_signal_sockets()
        return True

    def _close_signal_sockets(self):
        if self._signal_sockets is None:
            return
        reader, writer = self._signal_sockets
        self._signal_sockets = None
        if signal.set_wakeup_fd(-1) != writer.fileno():  # pragma: no cover
            logger.warning("the signal wakeup fd was replaced behind the Reactor's back")
        try:
            self._selector.unregister(reader)
        except (KeyError, ValueError):
            pass
        reader.close()
        writer.close()

    def _on_signal_bytes(self, reader, mask):
        try:
            data = reader.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            entry = self._signal_handlers.get(signum)
            if entry is not None:
                handle = entry[0]
                self._ready.append(Handle(handle._callback, handle._args))

    # -- running -------------------------------------------------------------

    def run(self) -> None:
        """Run iterations until stop() is called."""
        self._check_open()
        if self._thread_id is not None:
            raise RuntimeError("the Reactor is already running")
        self._thread_id = threading.get_ident()
        try:
            while True:  # a stop() before run() still lets one iteration run
                self._run_once(None)
                if self._stopping:
                    break
        finally:
            self._stopping = False
            self._thread_id = None

    def run_once(self, timeout: Optional[float] = None) -> None:
        """One iteration [L1]; wait at most `timeout` seconds (None: until
        an event, a timer or a callback is due)."""
        self._check_open()
        if self._thread_id is not None and self._thread_id != threading.get_ident():
            raise RuntimeError("the Reactor is running in another thread")
        if self._iterating:  # [L12]
            raise RuntimeError("run_once() cannot be called from a callback of the same Reactor")
        if timeout is not None and timeout > _MAX_WAIT:
            timeout = _MAX_WAIT  # as for timers: past the selectors' limits
        self._run_once(timeout)

    def stop(self) -> None:
        """Make run() return after the current iteration."""
        self._stopping = True

    def is_running(self) -> bool:
        return self._thread_id is not None

    def is_closed(self) -> bool:
        return self._closed

    def _run_once(self, timeout):
        self._iterating = True
        try:
            self._iterate(timeout)
        finally:
            self._iterating = False

    def _iterate(self, timeout):
        ready = self._ready
        timers = self._timers
        poller = self._poller
        if not poller.pending:  # [L11] a batch left by an exception goes first
            if ready or self._stopping:
                timeout = 0
            elif timers:
                until = timers[0].when - monotonic()
                if until < 0:
                    until = 0
                elif until > _MAX_WAIT:
                    until = _MAX_WAIT  # the loop waits again; the timer is not early
                if timeout is None or until < timeout:
                    timeout = until
            poller.wait(timeout)
        if timers:
            # [L9] due timers wait in the ready queue, behind what was ready.
            now = monotonic()
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                timer._reactor = None
                if timer._cancelled:
                    self._cancelled_timers -= 1
                else:
                    ready.append(timer)
        # [L1] what is ready now runs now; what these callbacks schedule waits.
        count = len(ready)
        poller.dispatch()
        popleft = ready.popleft
        while count:
            count -= 1
            handle = popleft()
            if handle._cancelled:
                continue
            try:
                handle._callback(*handle._args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.handle_exception(exc, handle._callback)

    def _run_event(self, key, mask):
        """Call an event's callback, unless it is stale [L2]."""
        fd = key.fd
        fd_to_key = self._fd_to_key
        if fd_to_key is None:
            fd_to_key = self._selector.get_map() or {}
        if fd_to_key.get(fd) is not key:
            return  # [L2] unregistered or replaced
        fileobj = key.fileobj
        if fileobj.__class__ is not int:
            try:
                if fileobj.fileno() != fd:
                    return  # [L2] closed
            except (OSError, ValueError):
                return
        try:
            key.data(fileobj, mask)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.handle_exception(exc, key.data)

    def _on_wakeup(self, fd, mask):
        # Drain first, then clear the flag [L4]: a waker that saw the flag
        # still set appended its callback before this iteration counted the
        # ready ones, so it runs next time; a waker after the clear writes.
        try:
            os.read(self._wakeup_fd, 8)
        except BlockingIOError:
            pass
        self._wakeup_pending = False

    def handle_exception(self, exc: BaseException, callback: Any = None) -> None:
        """Called with each exception a callback or protocol method raises
        (and, by default, each failure to connect); the loop goes on.

        Override (or assign) to change the policy; the default logs the
        traceback on the "reactor" logger, naming `callback` [L10].
        """
        logger.error("Exception in %s", describe(callback), exc_info=exc)

    def _report_error(self, exc, where, transport=None):
        """How transports report an error (reactor.net._transports [X4]): to
        handle_exception(), naming `where`."""
        self.handle_exception(exc, where)

    # -- networking: asyncio's protocols and transports, loaded on first use ---

    def create_server(
        self,
        protocol_factory: Callable[[], Any],
        host: Any = None,
        port: Any = None,
        **options: Any,
    ) -> Any:
        """A server for `protocol_factory`, listening at once: asyncio's
        create_server() without the coroutine (reactor.net._servers)."""
        from .net._servers import create_server

        return create_server(self, protocol_factory, host, port, **options)

    def create_connection(
        self,
        protocol_factory: Callable[[], Any],
        host: Any = None,
        port: Any = None,
        **options: Any,
    ) -> Any:
        """Connect, then call the protocol's connection_made(); failures go
        to on_error(exc).  Returns a handle with cancel() (reactor.net._connect)."""
        from .net._connect import create_connection

        return create_connection(self, protocol_factory, host, port, **options)

    def create_unix_server(
        self, protocol_factory: Callable[[], Any], path: Any = None, **options: Any
    ) -> Any:
        """create_server() on a Unix socket at `path` (reactor.net._servers)."""
        from .net._servers import create_unix_server

        return create_unix_server(self, protocol_factory, path, **options)

    def create_unix_connection(
        self, protocol_factory: Callable[[], Any], path: Any = None, **options: Any
    ) -> Any:
        """create_connection() to a Unix socket at `path` (reactor.net._connect)."""
        from .net._connect import create_unix_connection

        return create_unix_connection(self, protocol_factory, path, **options)

    def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], Any],
        local_addr: Any = None,
        remote_addr: Any = None,
        **options: Any,
    ) -> Any:
        """A datagram transport and its protocol, (transport, protocol): asyncio's
        create_datagram_endpoint() without the coroutine (reactor.net._datagram)."""
        from .net._datagram import create_datagram_endpoint

        return create_datagram_endpoint(self, protocol_factory, local_addr, remote_addr, **options)

    def _run_in_thread(self, func, args, on_done):
        """Run func(*args) in a worker thread, then on_done(result, exc) in
        the loop (exc is None on success).  For blocking calls the loop must
        not make itself, such as getaddrinfo() for a name."""
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(4, thread_name_prefix="reactor-worker")

        def done(future):
            exc = future.exception()
            result = None if exc is not None else future.result()
            try:
                self.call_soon_threadsafe(on_done, result, exc)
            except RuntimeError:
                pass  # the loop was closed meanwhile: nobody is waiting

        self._executor.submit(func, *args).add_done_callback(done)

    # -- closing ---------------------------------------------------------------

    def _check_open(self):
        if self._closed:
            raise RuntimeError("the Reactor is closed")

    def close(self) -> None:
        """Release the selector, the eventfd and signal handlers."""
        if self._closed:
            return
        if self._thread_id is not None:
            raise RuntimeError("cannot close a running Reactor")
        self._closed = True
        for signum in list(self._signal_handlers):
            self.remove_signal_handler(signum)
        self._close_signal_sockets()
        try:
            self._selector.unregister(self._wakeup_fd)
        except (KeyError, ValueError):
            pass
        with self._wakeup_lock:
            os.close(self._wakeup_fd)
            self._wakeup_fd = -1
        _live_reactors.discard(self)
        self._release_transports()
        self._poller.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._selector.close()
        self._ready.clear()
        self._timers.clear()

    def _release_transports(self):
        """Close the sockets of the transports still open (reactor.net._transports
        [X6]): their connection_lost() can no longer run."""
        for transport in list(self._transports.values()):
            if not transport.is_closing():
                warnings.warn(
                    f"unclosed transport {transport!r}: closed by Reactor.close()",
                    ResourceWarning,
                    source=transport,
                )
            transport._release()
        self._transports.clear()

    def __del__(self, _warn=warnings.warn):
        # An unclosed Reactor must not leak its eventfd (its selector
        # releases its own), nor leave Python writing signals to a closed fd.
        fd = getattr(self, "_wakeup_fd", -1)
        if fd < 0:
            return
        self._wakeup_fd = -1
        os.close(fd)
        note = ""
        if self._signal_sockets is not None:  # [L6]
            if threading.current_thread() is threading.main_thread():
                for signum in list(self._signal_handlers):
                    self.remove_signal_handler(signum)
                self._close_signal_sockets()
            else:
                for sock in self._signal_sockets:
                    sock.detach()
                note = (
                    " and left its signal wakeup fd installed (collected outside "
                    "the main thread: close() a Reactor that handles signals)"
                )
        _warn(
            f"unclosed Reactor {self!r}: its fds are closed now{note}",
            ResourceWarning,
            source=self,
        )

    def _reinit_after_fork(self):
        """[L7] New eventfd and signal socketpair for this child."""
        self._wakeup_lock = threading.Lock()  # a parent thread may hold the old one
        self._wakeup_pending = False
        if self._thread_id != threading.get_ident():
            self._thread_id = None  # run() was in a thread this child does not have
        # The worker pool's threads are the parent's: in the child the pool
        # counts them as running and never starts one, so work sent to it
        # would never run.  The child makes its own pool when it needs one.
        self._executor = None
        selector = self._selector
        if not isinstance(selector, SelectorBase) and hasattr(selector, "fileno"):
            self._replace_selector(selector)  # [L8]
        self._replace_fd(self._wakeup_fd, _new_eventfd(), self._on_wakeup)
        if self._signal_sockets is not None:
            reader, writer = self._signal_sockets
            new_reader, new_writer = socket.socketpair()
            self._replace_fd(
                reader.fileno(), new_reader.detach(), self._on_signal_bytes, fileobj=reader
            )
            os.dup2(new_writer.fileno(), writer.fileno(), inheritable=False)
            new_writer.close()
            writer.setblocking(False)
            reader.setblocking(False)
            # asyncio's own fork hook (3.12+) uninstalls any wakeup fd in the
            # child; ours runs after it [L7].  The forking thread is the
            # child's main thread, where signal functions work.
            if signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False) not in (
                -1,
                writer.fileno(),
            ):  # pragma: no cover - someone else's hook
                logger.warning(
                    "after fork() the signal wakeup fd was someone else's; the Reactor replaced it"
                )

    def _replace_selector(self, inherited):
        """[L8] A selector of inherited's class with its keys, for this child."""
        selector = type(inherited)()
        for key in list((inherited.get_map() or {}).values()):
            try:
                selector.register(key.fileobj, key.events, key.data)
            except (OSError, ValueError):
                pass  # closed since it was registered: the parent lost it too
        inherited.close()  # closes our fd of the instance; unregisters nothing
        self._selector = selector
        self._fd_to_key = getattr(selector, "_fd_to_key", None)
        self._poller = Poller(selector, self._run_event)

    def _replace_fd(self, fd, new_fd, callback, fileobj=None):
        """Put the open file `new_fd` under the number `fd` (closing it),
        registered again with `callback`."""
        fileobj = fd if fileobj is None else fileobj
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass
        os.dup2(new_fd, fd, inheritable=False)
        os.close(new_fd)
        self._selector.register(fileobj, _EVENT_READ, callback)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _reinit_all_after_fork():
    for reactor in list(_live_reactors):
        if not reactor._closed:
            reactor._reinit_after_fork()


# Registered after reactor._base's hook, so selectors are rebuilt first, and
# after asyncio's, which uninstalls the wakeup fd in a child [L7].
if "asyncio.events" in sys.modules:
    os.register_at_fork(after_in_child=_reinit_all_after_fork)
else:
    _hook_moved = False

    def _after_fork_unless_moved():
        if not _hook_moved:
            _reinit_all_after_fork()

    def _before_fork():
        global _hook_moved
        if not _hook_moved and "asyncio.events" in sys.modules:
            _hook_moved = True  # the child sees it too: the first hook stands down
            os.register_at_fork(after_in_child=_reinit_all_after_fork)

    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_unless_moved)
