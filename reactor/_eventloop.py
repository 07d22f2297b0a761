"""reactor's asyncio event loop: asyncio's complete API on reactor's
transports and IO path.

``EventLoop`` is asyncio's own Unix selector event loop (so everything
asyncio does at the coroutine level is asyncio's code, on every Python
version: tasks and futures, create_connection, create_server and
asyncio.Server, start_tls, the sock_* calls, sendfile, subprocesses, signal
handlers, executors, getaddrinfo, debug mode, shutdown_asyncgens) with two
layers replaced:

- the transports: the loop's stream and datagram transports (TCP, Unix,
  UDP, and TLS as asyncio's sslproto over a stream transport) are
  reactor's (reactor.net._streams, reactor.net._datagram), which write at once and
  take what the wait read for them;
- the wait: reactor's EpollSelector under a Poller (reactor._poller),
  whose one native call waits and reads every ready socket.

Entry points as uvloop's: ``reactor.run(main())``, ``new_event_loop()``,
``EventLoopPolicy``, ``install()``.

Facts this module relies on:

[A1] One iteration keeps asyncio's order (base_events._run_once): the
     callbacks that were ready before the wait, then the IO, then the
     timers that were due when the wait returned (one that falls due
     while the callbacks run waits); what these schedule runs in the next
     iteration.
     The IO runs in place of a handle queued behind the ready ones (only
     when there are any: otherwise at once), so a transport's bytes reach
     its protocol without a handle per event.
[A2] Readers and writers added with add_reader()/add_writer() (and so the
     sock_* calls, pipes, subprocesses) are asyncio's handles; they run at
     their event's place in the IO, each with asyncio's error handling.
[A3] Errors in a transport are reported through call_exception_handler()
     with asyncio's keys ('message', 'exception', 'transport', 'protocol')
     and asyncio's messages for the same failures.
[A4] asyncio.Server before Python 3.13 counts its transports
     (_attach()/_detach() without arguments); from 3.13 it keeps them
     (close_clients(), abort_clients()).  Transports always pass
     themselves; an adapter drops the argument for the older Servers.
[A5] Two asyncio bugs are not kept: its accept loop accepts `backlog`
     connections per event, so backlog=0 accepted none and the listener,
     still readable, spun (here at least one is accepted, as the Reactor
     does); its sock_connect() took EAGAIN from a Unix socket's connect()
     for a connect in progress, where it means the listener's backlog is
     full and no connection exists (here it is the error, as libuv has it).
"""

from __future__ import annotations

import asyncio
import contextvars
import selectors
import socket
import sys
import warnings
from asyncio import events, sslproto, trsock

# asyncio's private names, kept in step with BaseEventLoop; typeshed leaves
# them out, hence the one ignore.
from asyncio.base_events import (  # type: ignore[attr-defined]
    MAXIMUM_SELECT_TIMEOUT,
    _MIN_CANCELLED_TIMER_HANDLES_FRACTION,
    _MIN_SCHEDULED_TIMER_HANDLES,
    _format_handle,
)
from asyncio.log import logger as _asyncio_logger
import heapq

from .net._datagram import DatagramTransport
from ._epoll import EpollSelector
from ._poller import Poller
from .net._streams import StreamTransport

__all__ = ["EventLoop", "new_event_loop", "run", "EventLoopPolicy", "install"]

_PY313 = sys.version_info >= (3, 13)

# [A3] asyncio's messages, by the protocol method or the call that failed.
_METHOD_MESSAGES = {
    "data_received": "Fatal error: protocol.data_received() call failed.",
    "buffer_updated": "Fatal error: protocol.buffer_updated() call failed.",
    "get_buffer": "Fatal error: protocol.get_buffer() call failed.",
    "eof_received": "Fatal error: protocol.eof_received() call failed.",
    "pause_writing": "protocol.pause_writing() failed",
    "resume_writing": "protocol.resume_writing() failed",
}
_CALL_MESSAGES = (
    ("recvfrom", "Fatal read error on datagram transport"),
    ("sendto", "Fatal write error on datagram transport"),
    ("recv", "Fatal read error on socket transport"),
    ("send", "Fatal write error on socket transport"),
)


class _CountingServer:
    """[A4] An asyncio.Server that counts its transports."""

    __slots__ = ("_server",)

    def __init__(self, server):
        self._server = server

    def _attach(self, transport):
        self._server._attach()

    def _detach(self, transport):
        self._server._detach()


def _server_of(server):
    if server is None or _PY313:
        return server
    return _CountingServer(server)


class EventLoop(asyncio.SelectorEventLoop):
    """asyncio's event loop on reactor's transports and wait ([A1]-[A4])."""

    def __init__(self):
        super().__init__(EpollSelector())
        self._poller = Poller(self._selector, self._run_event)
        self._dispatch_handle = events.Handle(self._poller.dispatch, (), self)

    # -- transports ----------------------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        return StreamTransport(
            self,
            sock,
            protocol,
            self._extra(sock, extra),
            _server_of(server),
            waiter=waiter,
            context=contextvars.copy_context(),
        )

    def _make_ssl_transport(
        self,
        rawsock,
        protocol,
        sslcontext,
        waiter=None,
        *,
        server_side=False,
        server_hostname=None,
        extra=None,
        server=None,
        **timeouts,
    ):
        # asyncio's TLS state machine (its sslproto knows no loop internals)
        # over reactor's stream transport.
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname, **timeouts
        )
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        return DatagramTransport(
            self,
            sock,
            protocol,
            address,
            self._extra(sock, extra),
            waiter=waiter,
            context=contextvars.copy_context(),
        )

    def _accept_connection(
        self,
        protocol_factory,
        sock,
        sslcontext=None,
        server=None,
        backlog=100,
        *timeouts,
        **options,
    ):
        super()._accept_connection(
            protocol_factory, sock, sslcontext, server, max(backlog, 1), *timeouts, **options
        )  # [A5]

    def _sock_connect(self, fut, sock, address):
        if sock.family != socket.AF_UNIX:
            super()._sock_connect(fut, sock, address)
            return
        # A Unix socket's connect() completes at once or fails; EAGAIN is a
        # full backlog [A5].
        try:
            sock.connect(address)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)

    @staticmethod
    def _extra(sock, extra):
        extra = {} if extra is None else dict(extra)
        extra["socket"] = trsock.TransportSocket(sock)  # what asyncio's transports give
        return extra

    def _report_error(self, exc, where, transport=None):
        """[A3] An error in a transport, as asyncio reports it."""
        name = getattr(where, "__name__", None)
        message = _METHOD_MESSAGES.get(name) if name is not None else None
        if message is None:
            message = "Fatal error on transport"
            if isinstance(where, str):
                for call, text in _CALL_MESSAGES:
                    if where.startswith(call + "("):
                        message = text
                        break
            elif callable(where):
                message = f"Exception in callback {_describe(where)}"
        context = {"message": message, "exception": exc}
        if transport is not None:
            context["transport"] = transport
            context["protocol"] = transport._protocol
        self.call_exception_handler(context)

    # -- one iteration [A1] -----------------------------------------------------------

    def _run_once(self):
        scheduled = self._scheduled
        count = len(scheduled)
        if (
            count > _MIN_SCHEDULED_TIMER_HANDLES
            and self._timer_cancelled_count / count > _MIN_CANCELLED_TIMER_HANDLES_FRACTION
        ):
            # Mostly cancelled timers: rebuild the heap, as asyncio does.
            kept = []
            for handle in scheduled:
                if handle._cancelled:
                    handle._scheduled = False
                else:
                    kept.append(handle)
            heapq.heapify(kept)
            self._scheduled = scheduled = kept
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0]._cancelled:
                self._timer_cancelled_count -= 1
                handle = heapq.heappop(scheduled)
                handle._scheduled = False

        ready = self._ready
        poller = self._poller
        if not poller.pending:  # a batch an exception interrupted is finished first
            timeout = None
            if ready or self._stopping:
                timeout = 0
            elif scheduled:
                timeout = min(max(0, scheduled[0]._when - self.time()), MAXIMUM_SELECT_TIMEOUT)
            poller.wait(timeout)
        end_time = self.time() + self._clock_resolution
        if ready:
            ready.append(self._dispatch_handle)  # after what was ready [A1]
            due = ready
        else:
            if self._debug:  # a slow batch of IO is logged, as a slow handle
                self._run_timed(self._dispatch_handle)
            else:
                poller.dispatch()
            # What the IO scheduled is for the next iteration; the due
            # timers are not: they go in front of it [A1].
            due = [] if ready else ready

        while scheduled:
            handle = scheduled[0]
            if handle._when >= end_time:
                break
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
            due.append(handle)

        if due is ready:
            ntodo = len(ready)
        else:
            ready.extendleft(reversed(due))  # one call: other threads only append
            ntodo = len(due)
        popleft = ready.popleft
        if self._debug:
            for _ in range(ntodo):
                handle = popleft()
                if not handle._cancelled:
                    self._run_timed(handle)
        else:
            for _ in range(ntodo):
                handle = popleft()
                if not handle._cancelled:
                    handle._run()
        handle = None  # no cycle through a traceback

    def _run_timed(self, handle):
        """handle._run(), in debug mode: a slow callback is logged, as asyncio does."""
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                _asyncio_logger.warning(
                    "Executing %s took %.3f seconds", _format_handle(handle), dt
                )
        finally:
            self._current_handle = None

    def _run_io_handle(self, key, index, handle, remove):
        """One of asyncio's reader (index 0) or writer (1) handles of `key`,
        in place, as asyncio's _process_events() would queue it [A2]."""
        if handle._cancelled:
            if self._registered(key, index, handle):
                remove(key.fileobj)
        elif self._debug:
            self._run_timed(handle)
        else:
            handle._run()

    def _run_event(self, key, mask):
        """An event that is not bytes read for a transport [A2]."""
        data = key.data
        if data.__class__ is tuple:
            reader, writer = data
            if mask & selectors.EVENT_READ and reader is not None:
                self._run_io_handle(key, 0, reader, self._remove_reader)
            if mask & selectors.EVENT_WRITE and writer is not None:
                self._run_io_handle(key, 1, writer, self._remove_writer)
            return
        if self._selector._fd_to_key.get(key.fd) is not key:
            return  # unregistered or replaced by an earlier callback of the batch
        try:
            data(key.fileobj, mask)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport = getattr(data, "__self__", None)
            self._report_error(exc, data, transport)

    def _registered(self, key, index, handle):
        """`handle` is still the fd's reader (0) or writer (1).  The batch's
        keys are as the wait saw them [A1]: a callback that ran since may have
        removed a handle and added another for the fd (sock_recv() does), and
        the new one must stay (asyncio removes a cancelled handle's fd when it
        sees the event, before any callback runs)."""
        current = self._selector._fd_to_key.get(key.fd)
        return (
            current is not None
            and current.data.__class__ is tuple
            and current.data[index] is handle
        )

    def close(self):
        super().close()
        self._poller.close()


def _describe(callback):
    name = getattr(callback, "__qualname__", None)
    return f"{name}()" if name else repr(callback)


def new_event_loop() -> EventLoop:
    """A new reactor.EventLoop."""
    return EventLoop()


def run(main, *, loop_factory=new_event_loop, debug=None, **run_kwargs):
    """Run the coroutine `main` on a new reactor.EventLoop and return its
    result: asyncio.run() with reactor's loop (asyncio.Runner on 3.11,
    asyncio.run(loop_factory=) from 3.12, the same steps on 3.10)."""
    if sys.version_info >= (3, 12):
        return asyncio.run(main, loop_factory=loop_factory, debug=debug, **run_kwargs)
    if events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory, debug=debug, **run_kwargs) as runner:
            return runner.run(main)
    if run_kwargs:
        raise TypeError(f"run() got unexpected keyword arguments: {', '.join(run_kwargs)}")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop):
    """asyncio.runners._cancel_all_tasks (3.10)."""
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during asyncio.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making reactor.EventLoop loops."""

    def _loop_factory(self):
        return new_event_loop()

    def new_event_loop(self):
        return new_event_loop()


def install():
    """Make asyncio's policy create reactor loops (asyncio.run,
    asyncio.new_event_loop, ...).  From Python 3.12 prefer reactor.run()
    or asyncio.run(main, loop_factory=reactor.new_event_loop), as uvloop
    does: event loop policies are deprecated from 3.14."""
    if sys.version_info >= (3, 12):
        warnings.warn(
            "reactor.install() is deprecated in favor of reactor.run() starting with Python 3.12.",
            DeprecationWarning,
            stacklevel=2,
        )
    asyncio.set_event_loop_policy(EventLoopPolicy())
