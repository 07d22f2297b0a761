"""Hostile input to the protocol API (issue 10: every new public API is
fuzzed): create_server, create_connection, create_datagram_endpoint and the
transports' methods get wrong types and values, on the Reactor and on
asyncio's loop in lockstep.  Both must accept the same calls and refuse the
same ones with the same exception type, except where the Reactor is stricter
on purpose (STRICTER, each with its reason).  Nothing may hang or leak.
"""

import asyncio
import gc
import inspect
import math
import socket
import ssl
import sys
import warnings

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reactor

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTEXT = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ODD = st.sampled_from(
    [None, "", "x", b"x", -1, 0, 1.5, math.nan, math.inf, 2**80, [], {}, object()]
)
HOSTS = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            "127.0.0.1",
            "::1",
            "1.2.3.4",
            "127.0.0.1\0",
            b"127.0.0.1",
            ["127.0.0.1", "::1"],
            5,
        ]
    ),
    ODD,
)
PORTS = st.one_of(st.sampled_from([None, 0, -1, 65536, "0", 2**80, 1.5]), ODD)


def _outcome(call):
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return ("raise", exc)


def _kinds(exc):
    """The exception classes two outcomes may share.  (asyncio 3.10 checks
    datagram addresses with assert: its AssertionError is 3.11's TypeError.)"""
    if isinstance(exc, AssertionError) and "2-tuple" in str(exc):
        return {TypeError}
    return {
        cls
        for cls in type(exc).__mro__
        if cls
        in (
            TypeError,
            ValueError,
            OverflowError,
            OSError,
            RuntimeError,
            UnicodeError,
            AttributeError,
            KeyError,
        )
    }


def _same(ours, theirs, stricter):
    if ours[0] == theirs[0] == "ok":
        return True
    if ours[0] == theirs[0] == "raise" and _kinds(ours[1]) & _kinds(theirs[1]):
        return True
    if ours[0] == "raise" and stricter(ours[1]):
        return True
    return False


def _bad_tls_option(kwargs, exc):
    """The Reactor checks TLS options when called; asyncio at the first
    connection (a server) or the handshake (a client)."""
    if not isinstance(exc, (TypeError, ValueError)) or not kwargs.get("ssl"):
        return False
    context = kwargs["ssl"]
    timeout = kwargs.get("ssl_handshake_timeout")
    bad_timeout = timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0)
    return not isinstance(context, (bool, ssl.SSLContext)) or bad_timeout


@pytest.fixture
def loops():
    ours = reactor.Reactor()
    theirs = asyncio.new_event_loop()
    yield ours, theirs
    ours.close()
    theirs.close()


def _close(result):
    if result[0] == "ok":
        result[1].close()


@SETTINGS
@given(
    kwargs=st.fixed_dictionaries(
        {"host": HOSTS, "port": PORTS},
        optional={
            "backlog": st.one_of(st.sampled_from([100, 0, 1]), ODD),
            "reuse_address": st.one_of(st.booleans(), ODD),
            "reuse_port": st.one_of(st.booleans(), ODD),
            "ssl": st.one_of(st.just(CONTEXT), st.booleans(), ODD),
            "ssl_handshake_timeout": st.one_of(st.sampled_from([0.5, 0, -1]), ODD),
            "family": st.one_of(
                st.sampled_from(
                    [socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6, socket.AF_UNIX, 999]
                ),
                ODD,
            ),
        },
    )
)
def test_create_server_refuses_what_asyncio_refuses(loops, kwargs):
    ours_loop, theirs_loop = loops
    if kwargs.get("host") is None and kwargs.get("port") is None:
        kwargs["port"] = 0
    ours = _outcome(lambda: ours_loop.create_server(asyncio.Protocol, **kwargs))
    _close(ours)  # before asyncio binds the same fixed port, if there is one
    with warnings.catch_warnings():
        # asyncio leaves its sockets to the garbage collector when listen()
        # refuses the backlog: collect them here, quietly.
        warnings.simplefilter("ignore", ResourceWarning)
        theirs = _outcome(
            lambda: theirs_loop.run_until_complete(
                theirs_loop.create_server(asyncio.Protocol, **kwargs)
            )
        )
        if theirs[0] == "raise":
            theirs = ("raise", theirs[1].with_traceback(None))
            gc.collect()
    try:

        def stricter(exc):
            # asyncio accepts any truthy object as an SSL context, and any
            # handshake timeout, and fails at the first connection; the
            # Reactor refuses them at once.
            return _bad_tls_option(kwargs, exc)

        assert _same(ours, theirs, stricter), (kwargs, ours, theirs)
    finally:
        if theirs[0] == "ok":
            theirs[1].close()
            theirs_loop.run_until_complete(theirs[1].wait_closed())


@pytest.mark.parametrize("host", [[], ()])
def test_create_server_without_addresses_does_what_this_pythons_asyncio_does(loops, host):
    """host=[]: Python 3.13's asyncio raises OSError("could not bind on any
    address out of []") (with bpo-30945's skipping of unavailable
    addresses); 3.10-3.12's return a server without sockets.  The README
    promises the running Python's behaviour, so the Reactor does the same
    per version (_servers.py [V4]): this names the expected outcome, and
    then checks asyncio agrees."""
    ours_loop, theirs_loop = loops
    ours = _outcome(lambda: ours_loop.create_server(asyncio.Protocol, host, 0))
    theirs = _outcome(
        lambda: theirs_loop.run_until_complete(
            theirs_loop.create_server(asyncio.Protocol, host, 0)
        )
    )
    try:
        if sys.version_info >= (3, 13):
            assert ours[0] == "raise" and type(ours[1]) is OSError, ours
            assert str(ours[1]) == "could not bind on any address out of []"
        else:
            assert ours[0] == "ok" and ours[1].sockets == (), ours
        assert _same(ours, theirs, lambda exc: False), (ours, theirs)
        if ours[0] == "raise":
            assert str(ours[1]) == str(theirs[1])
    finally:
        _close(ours)
        if theirs[0] == "ok":
            theirs[1].close()
            theirs_loop.run_until_complete(theirs[1].wait_closed())


@pytest.mark.parametrize("backlog", [None, "x", 1.5])
def test_a_backlog_that_is_not_an_int_gets_listens_error_and_leaks_no_socket(loops, backlog):
    """listen() refuses it with TypeError, as under asyncio, and the bound
    sockets are closed (the Server used to refuse it before listening, and
    left them to the garbage collector); with no address to listen on
    (host=[]) asyncio never looks at the backlog, and neither does the
    Reactor (found by test_create_server_refuses_what_asyncio_refuses on 3.10)."""
    ours_loop, _ = loops
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for host in (None, "127.0.0.1"):
            with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
                ours_loop.create_server(asyncio.Protocol, host, 0, backlog=backlog)
            gc.collect()  # an unclosed socket would warn, as an error, here
    if sys.version_info < (3, 13):  # 3.13 refuses host=[] itself (the test above)
        server = ours_loop.create_server(asyncio.Protocol, [], 0, backlog=backlog)
        assert server.sockets == ()
        server.close()


@SETTINGS
@given(
    kwargs=st.fixed_dictionaries(
        {"host": HOSTS, "port": PORTS},
        optional={
            "ssl": st.one_of(st.just(ssl.create_default_context()), st.booleans(), ODD),
            "server_hostname": st.one_of(st.sampled_from(["localhost", ""]), ODD),
            "ssl_handshake_timeout": st.one_of(st.sampled_from([0.5, 0, -1]), ODD),
            "local_addr": st.one_of(st.sampled_from([("127.0.0.1", 0), ("1.2.3.4", 0)]), ODD),
            "family": st.one_of(st.sampled_from([0, socket.AF_INET, socket.AF_INET6, 999]), ODD),
        },
    )
)
def test_create_connection_refuses_what_asyncio_refuses(loops, kwargs):
    """Connect to a closed port (or whatever the host is): the outcome, an
    exception raised at once or given to on_error, has asyncio's type."""
    ours_loop, theirs_loop = loops
    if isinstance(kwargs.get("host"), str) and kwargs["host"] not in ("", "127.0.0.1", "::1"):
        kwargs["host"] = "127.0.0.1"  # no resolver, no real network
    errors = []
    ours = _outcome(
        lambda: ours_loop.create_connection(asyncio.Protocol, on_error=errors.append, **kwargs)
    )
    if ours[0] == "ok":
        handle = ours[1]
        for _ in range(200):
            if handle.done():
                break
            ours_loop.run_once(0.01)
        handle.cancel()
        if handle.transport is not None:
            handle.transport.close()
            ours_loop.run_once(0)
        ours = ("raise", errors[0]) if errors else ("ok", None)
    theirs = _outcome(
        lambda: theirs_loop.run_until_complete(
            asyncio.wait_for(theirs_loop.create_connection(asyncio.Protocol, **kwargs), 2)
        )
    )
    if theirs[0] == "ok":
        theirs[1][0].close()
        theirs_loop.run_until_complete(asyncio.sleep(0))

    assert _same(ours, theirs, lambda exc: _bad_tls_option(kwargs, exc)), (kwargs, ours, theirs)


@SETTINGS
@given(
    kwargs=st.fixed_dictionaries(
        {},
        optional={
            "local_addr": st.one_of(
                st.sampled_from(
                    [("127.0.0.1", 0), ("::1", 0), ("1.2.3.4", 0), ("127.0.0.1", -1), "127.0.0.1"]
                ),
                ODD,
            ),
            "remote_addr": st.one_of(
                st.sampled_from([("127.0.0.1", 9), ("127.0.0.1", 0), ("::1", 9)]), ODD
            ),
            "family": st.one_of(st.sampled_from([0, socket.AF_INET, socket.AF_INET6, 999]), ODD),
            "reuse_port": st.one_of(st.booleans(), ODD),
            "allow_broadcast": st.one_of(st.booleans(), ODD),
        },
    )
)
def test_create_datagram_endpoint_refuses_what_asyncio_refuses(loops, kwargs):
    ours_loop, theirs_loop = loops
    ours = _outcome(lambda: ours_loop.create_datagram_endpoint(asyncio.DatagramProtocol, **kwargs))
    theirs = _outcome(
        lambda: theirs_loop.run_until_complete(
            theirs_loop.create_datagram_endpoint(asyncio.DatagramProtocol, **kwargs)
        )
    )
    if ours[0] == "ok":
        ours[1][0].close()
        ours_loop.run_once(0)
        ours = ("ok", None)
    if theirs[0] == "ok":
        theirs[1][0].close()
        theirs_loop.run_until_complete(asyncio.sleep(0))
    assert _same(ours, theirs, lambda exc: False), (kwargs, ours, theirs)


TRANSPORT_CALLS = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.one_of(
                st.binary(max_size=64), ODD, st.just(bytearray(b"ab")), st.just(memoryview(b"c"))
            ),
        ),
        st.tuples(
            st.just("writelines"), st.one_of(st.lists(st.binary(max_size=8), max_size=3), ODD)
        ),
        st.tuples(
            st.just("set_write_buffer_limits"),
            st.tuples(
                st.one_of(st.integers(-5, 10**6), ODD), st.one_of(st.integers(-5, 10**6), ODD)
            ),
        ),
        st.tuples(
            st.just("get_extra_info"),
            st.one_of(st.sampled_from(["peername", "sockname", "socket", "nothing"]), ODD),
        ),
        st.tuples(st.just("pause_reading"), st.none()),
        st.tuples(st.just("resume_reading"), st.none()),
        st.tuples(st.just("write_eof"), st.none()),
        st.tuples(st.just("abort"), st.none()),
        st.tuples(st.just("close"), st.none()),
    ),
    max_size=12,
)


def _transport_pair(loop, is_reactor):
    """A connected client transport on `loop`, and a raw peer socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if is_reactor:
        handle = loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        while handle.transport is None:
            loop.run_once(0.01)
        transport = handle.transport
    else:
        transport, _ = loop.run_until_complete(
            loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        )
    peer, _ = listener.accept()
    listener.close()
    return transport, peer


def _apply(transport, name, argument):
    method = getattr(transport, name)
    if name == "set_write_buffer_limits":
        return method(*argument)
    if argument is None and name != "get_extra_info":
        return method()
    return method(argument)


# Where asyncio's socket transport is not the reference for writelines(), per
# Python version.  The Reactor's writelines() is asyncio.WriteTransport's on
# every version: b"".join(list_of_data), then write().
# - 3.10, 3.11: asyncio's socket transport has that writelines() too: no
#   deviation.
# - 3.12 on: a zero-copy writelines() of its own (CPython gh-91166), which
#   (a) "falsy": returns at once on any falsy argument, before iterating it:
#   writelines(0) or writelines(False) is accepted.  Intended: TypeError, as
#   on 3.10 and 3.11 and as write(0) on every version: the argument is an
#   iterable of bytes-like objects;
#   (b) "eof": after write_eof() raises RuntimeError before looking at the
#   argument.  Intended: refused too, but the items are checked first
#   (TypeError for a bad one), as on 3.10 and 3.11;
#   (c) "lost": skips write()'s check for a lost connection: after abort(),
#   or a close() with nothing queued, it buffers the data and calls into
#   the socket and loop it has dropped (AttributeError or TypeError; CPython
#   gh-136234, fixed for later 3.13 and 3.14 releases by making it do what
#   write() does).  Intended: what write() does on every version, the data
#   is dropped (counted, and logged past a threshold).  Whether the running
#   asyncio has the fix is read from its own source, not guessed from the
#   version number;
#   (d) "empty": keeps an empty item queued when everything before it was
#   sent (_adjust_leftover_buffer() pops entries only while sent bytes are
#   left to account for), so the transport stays registered for writing
#   with nothing to send, and the next write() queues behind it instead of
#   sending at once.  Intended: an empty item queues nothing, as on 3.10 and
#   3.11.  From there the two transports' buffers differ by design, so the
#   example ends.
_ZERO_COPY_WRITELINES = sys.version_info >= (3, 12)
_WRITELINES_MISSES_LOST_CONNECTION = (
    _ZERO_COPY_WRITELINES
    and "_conn_lost"
    not in inspect.getsource(asyncio.selector_events._SelectorSocketTransport.writelines)
)


def _asyncio_writelines_deviation(transport, argument):
    """ "falsy", "eof", "lost" or "empty" (above) if asyncio's `transport` is about
    to deviate from the intended writelines(argument); else None."""
    if not _ZERO_COPY_WRITELINES or argument is None:  # None: no argument, see _apply
        return None
    if transport._eof:
        return "eof"
    if not argument and not isinstance(argument, (str, bytes, list, tuple, dict)):
        return "falsy"  # 0, 0.0, False: not iterable (empty iterables are fine)
    if (
        _WRITELINES_MISSES_LOST_CONNECTION
        and transport._conn_lost
        and isinstance(argument, list)
        and argument
    ):  # a non-empty list of bytes
        return "lost"
    if isinstance(argument, list) and not all(argument) and not transport._conn_lost:
        return "empty"
    return None


@SETTINGS
@given(calls=TRANSPORT_CALLS)
def test_transport_methods_behave_as_asyncios(loops, calls):
    ours_loop, theirs_loop = loops
    ours, ours_peer = _transport_pair(ours_loop, True)
    theirs, theirs_peer = _transport_pair(theirs_loop, False)
    try:
        for name, argument in calls:
            deviation = (
                _asyncio_writelines_deviation(theirs, argument) if name == "writelines" else None
            )
            a = _outcome(lambda: _apply(ours, name, argument))
            b = _outcome(lambda: _apply(theirs, name, argument))
            if (
                name == "get_extra_info"
                and a[0] == b[0] == "ok"
                and argument in ("peername", "nothing")
            ):
                assert (a[1] is None) == (b[1] is None)
            if deviation == "lost":
                assert a == ("ok", None), (argument, a)  # as write(): dropped
                assert b[0] == "raise", b
                break  # asyncio's transport now holds a buffer it cannot send
            if deviation == "empty":
                assert a == b == ("ok", None), (argument, a, b)
                assert ours.get_write_buffer_size() == theirs.get_write_buffer_size()
                break  # asyncio's queues the next write(), the Reactor's sends it
            if deviation == "falsy":
                assert a[0] == "raise" and isinstance(a[1], TypeError), (argument, a)
                assert b == ("ok", None), b
            elif deviation == "eof":
                assert a[0] == "raise" and isinstance(a[1], (TypeError, RuntimeError)), a
                assert b[0] == "raise" and isinstance(b[1], RuntimeError), b
            else:
                assert _same(a, b, lambda exc: False), (name, argument, a, b)
            assert ours.is_closing() == theirs.is_closing()
            assert ours.get_write_buffer_size() == theirs.get_write_buffer_size()
            assert ours.get_write_buffer_limits() == theirs.get_write_buffer_limits()
            ours_loop.run_once(0)
            theirs_loop.run_until_complete(asyncio.sleep(0))
    finally:
        ours.abort()
        theirs.abort()
        ours_loop.run_once(0)
        theirs_loop.run_until_complete(asyncio.sleep(0))
        ours_peer.close()
        theirs_peer.close()
