"""Hostile input to the whole public API (README, "Reliability").

Selectors are differential: every call, with wrong types and values, is made
on reactor's selector and on the stdlib's of the same backend, and both must
return the same or raise the same exception type.  The APIs beyond the
stdlib (epoll flags, the Reactor, TCPServer) must raise only their
documented exception types.  Nothing may crash the interpreter or hang:
waits are only ever asked for timeouts that cannot block for long.
"""

import errno
import math
import os
import signal
import socket

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import reactor
from _support import BACKENDS, Diff, outcome

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Fileno:
    """An object whose fileno() returns `value`, or raises it."""

    def __init__(self, value):
        self.value = value

    def fileno(self):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value

    def __repr__(self):
        return f"Fileno({self.value!r})"


class IntLike:
    """Not an int, but convertible with int() (the stdlib calls int())."""

    def __init__(self, value):
        self.value = value

    def __int__(self):
        return self.value

    def __index__(self):
        return self.value


BAD_INTS = st.sampled_from(
    [
        -(2**63),
        -(2**31),
        -2,
        -1,
        2**31 - 1,
        2**31,
        2**32,
        2**63 - 1,
        2**63,
        2**64,
        2**100,
        1 << 20,
        (1 << 20) - 1,
    ]
)
# For SelectSelector, fds from 1024 up to fs.nr_open work where the stdlib
# refuses them (README, "Beyond the stdlib"): only the numbers both refuse,
# and only of one kind (which error comes first depends on set order).
SELECT_BAD_INTS = st.sampled_from([-(2**63), -(2**31), -2, -1, 2**31, 2**32, 2**63, 2**100])
BAD_SCALARS = st.sampled_from(
    [
        None,
        "3",
        b"3",
        3.0,
        3.5,
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
        [],
        (),
        {},
        object(),
        IntLike(3),
        IntLike(-1),
    ]
)
EXCEPTIONS = st.sampled_from(
    [
        ValueError("v"),
        TypeError("t"),
        AttributeError("a"),
        OSError(errno.EBADF, "b"),
        RuntimeError("r"),
        KeyError("k"),
    ]
)


def fileobjs(real, bad_ints=BAD_INTS):
    """What callers hand to register() & co.: real sockets or their fds,
    and everything wrong."""
    wrong_fileno = st.one_of(bad_ints, BAD_SCALARS, EXCEPTIONS, st.sampled_from(real))
    return st.one_of(
        st.sampled_from(real),
        st.sampled_from(real).map(lambda s: s if isinstance(s, int) else s.fileno()),
        bad_ints,
        BAD_SCALARS,
        wrong_fileno.map(Fileno),
    )


EVENTS = st.one_of(st.integers(-4, 8), BAD_INTS, BAD_SCALARS)
DATA = st.one_of(st.none(), st.integers(), st.text(max_size=3))
# Timeouts that cannot block long: none positive beyond a millisecond, but
# every wrong type and out-of-range value.
TIMEOUTS = st.one_of(
    st.sampled_from(
        [
            0,
            -1,
            -0.0,
            1e-9,
            0.0005,
            math.nan,
            math.inf,
            -math.inf,
            1e300,
            2**64,
            2**100,
            -(2**100),
            "0",
            b"0",
            [],
            object(),
            0j,
        ]
    ),
    st.floats(max_value=0.001),
)


def _short_or_wrong(timeout):
    try:
        return not timeout > 0.001
    except TypeError:
        return True


def operations(real, bad_ints=BAD_INTS):
    fobj = fileobjs(real, bad_ints)
    return st.lists(
        st.one_of(
            st.tuples(st.just("register"), fobj, EVENTS, DATA),
            st.tuples(st.just("modify"), fobj, EVENTS, DATA),
            st.tuples(st.just("unregister"), fobj),
            st.tuples(st.just("get_key"), fobj),
            st.tuples(st.just("map_get"), fobj),
            st.tuples(st.just("map_getitem"), fobj),
            st.tuples(st.just("map_contains"), fobj),
            st.tuples(st.just("select"), TIMEOUTS),
        ),
        max_size=25,
    )


class _Resources:
    """Two socket pairs (one side readable), a closed fd number, and a
    regular file: the real objects the fuzzer mixes with wrong ones."""

    def __init__(self):
        self.a, self.b = socket.socketpair()
        self.c, self.d = socket.socketpair()
        self.b.send(b"x")
        fd = os.dup(self.a.fileno())
        os.close(fd)
        self.closed_fd = fd
        self.file = open(os.devnull, "rb")

    def real(self):
        return [self.a, self.c, self.d, self.closed_fd, self.file, self.a.fileno()]

    def close(self):
        for s in (self.a, self.b, self.c, self.d, self.file):
            s.close()


RESOURCES = _Resources()


@pytest.fixture(scope="module", autouse=True)
def _close_resources():
    yield
    RESOURCES.close()


def _apply(diff, op):
    name, *args = op
    if name == "select":
        diff.call("select", args[0])
    elif name.startswith("map_"):
        how = name[4:]
        std_map, our_map = diff.std.get_map(), diff.ours.get_map()
        fn = {
            "get": lambda m, o: m.get(o),
            "getitem": lambda m, o: m[o],
            "contains": lambda m, o: o in m,
        }[how]
        std, ours = outcome(fn, std_map, args[0]), outcome(fn, our_map, args[0])
        assert ours.signature() == std.signature(), (op, std, ours)
    else:
        diff.call(name, *args)


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
@SETTINGS
@given(data=st.data())
def test_selectors_under_hostile_calls_behave_as_the_stdlib(backend, data):
    ops = data.draw(
        operations(RESOURCES.real(), SELECT_BAD_INTS if backend.name == "select" else BAD_INTS)
    )
    with Diff(backend) as diff:
        for op in ops:
            _apply(diff, op)
    # Closed: every call still behaves as the stdlib's.
    for op in ops[:5]:
        _apply(diff, op)


@SETTINGS
@given(
    flags=st.one_of(
        st.integers(-(2**70), 2**70),
        BAD_SCALARS,
        st.sampled_from(
            [
                reactor.EPOLLET,
                reactor.EPOLLONESHOT,
                reactor.EPOLLEXCLUSIVE,
                reactor.EPOLLRDHUP,
                reactor.EPOLLPRI,
                1 << 31,
                1 << 40,
            ]
        ),
    ),
    fobj=fileobjs(RESOURCES.real()),
    events=EVENTS,
)
def test_epoll_flags_raise_only_documented_errors(flags, fobj, events):
    with reactor.EpollSelector() as sel:
        for call in (
            lambda: sel.register(fobj, events, flags=flags),
            lambda: sel.modify(fobj, events, flags=flags),
        ):
            try:
                call()
            except (
                TypeError,
                ValueError,
                OverflowError,
                KeyError,
                OSError,
                AttributeError,
                RuntimeError,
            ):
                # AttributeError, RuntimeError and KeyError come from a
                # fileno() that raises them: the stdlib lets them through.
                pass
        sel.select(0)


CALLBACKS = st.one_of(st.just(print), BAD_SCALARS, BAD_INTS)
DELAYS = st.one_of(
    st.floats(max_value=0.001), BAD_INTS, BAD_SCALARS, st.sampled_from([math.inf, 1e300, 2**2000])
)
REACTOR_ERRORS = (
    TypeError,
    ValueError,
    OverflowError,
    KeyError,
    OSError,
    RuntimeError,
    AttributeError,
)


@SETTINGS
@given(data=st.data())
def test_reactor_under_hostile_calls(data):
    real = RESOURCES.real()
    with reactor.Reactor() as loop:
        for _ in range(data.draw(st.integers(1, 12))):
            which = data.draw(
                st.sampled_from(
                    [
                        "register",
                        "modify",
                        "unregister",
                        "call_soon",
                        "call_soon_threadsafe",
                        "call_later",
                        "call_at",
                        "run_once",
                        "add_signal_handler",
                        "remove_signal_handler",
                    ]
                )
            )
            try:
                if which in ("register", "modify"):
                    getattr(loop, which)(
                        data.draw(fileobjs(real)), data.draw(EVENTS), data.draw(CALLBACKS)
                    )
                elif which == "unregister":
                    loop.unregister(data.draw(fileobjs(real)))
                elif which in ("call_soon", "call_soon_threadsafe"):
                    getattr(loop, which)(data.draw(CALLBACKS))
                elif which == "call_later":
                    loop.call_later(data.draw(DELAYS), data.draw(CALLBACKS))
                elif which == "call_at":
                    loop.call_at(data.draw(DELAYS), data.draw(CALLBACKS))
                elif which == "run_once":
                    # A huge timeout is a real wait here (capped at a day,
                    # or at the next timer): only the short and the wrong.
                    loop.run_once(data.draw(TIMEOUTS.filter(_short_or_wrong)))
                elif which == "add_signal_handler":
                    signum = data.draw(
                        st.one_of(BAD_INTS, BAD_SCALARS, st.sampled_from([signal.SIGKILL, 0, 65]))
                    )
                    loop.add_signal_handler(signum, data.draw(CALLBACKS))
                else:
                    loop.remove_signal_handler(data.draw(st.one_of(BAD_INTS, BAD_SCALARS)))
            except REACTOR_ERRORS:
                pass
        # Whatever was accepted, the loop still runs an iteration, and every
        # registration it kept is one a caller could have made.
        for key in list(loop.selector.get_map().values()):
            assert callable(key.data)
        loop.run_once(0)


@SETTINGS
@given(
    kwargs=st.fixed_dictionaries(
        {},
        optional={
            # No names to resolve: the resolver could wait on a network we lack.
            "host": st.one_of(
                st.sampled_from(["127.0.0.1", "::1", "1.2.3.4", "127.0.0.1\0"]),
                BAD_SCALARS,
                BAD_INTS,
            ),
            "port": st.one_of(st.sampled_from([0, -1, 65536, 2**80]), BAD_SCALARS),
            "on_data": CALLBACKS,
            "max_connections": st.one_of(st.none(), st.integers(-2, 3), BAD_SCALARS),
            "idle_timeout": st.one_of(st.none(), DELAYS),
            "max_outbound": st.one_of(st.integers(-2, 3), BAD_INTS, BAD_SCALARS),
            "read_size": st.one_of(st.integers(-2, 3), BAD_INTS, BAD_SCALARS),
            "accepts_per_event": st.one_of(st.integers(-2, 3), BAD_INTS, BAD_SCALARS),
            "backlog": st.one_of(st.integers(-2, 3), BAD_INTS, BAD_SCALARS),
        },
    )
)
def test_tcpserver_arguments_raise_only_documented_errors(kwargs):
    kwargs.setdefault("on_data", lambda conn, data: conn.write(data))
    with reactor.Reactor() as loop:
        try:
            server = reactor.TCPServer(loop, **kwargs)
        except (TypeError, ValueError, OverflowError, OSError):
            return
        try:
            loop.run_once(0)
        finally:
            server.close()


# --------------------------------------------------------------------------
# Timeouts at the edges, with signals interrupting the wait (issue 10)

# 0, subnormal, 2**31 ms, 2**63 ns, inf, nan, negative, and the numbers
# around each backend's limit (INT_MAX ms for epoll and poll, 2**63 - 1 ns
# for select), as floats and ints.
EDGE_TIMEOUTS = st.one_of(
    st.sampled_from(
        [
            None,
            0,
            0.0,
            -0.0,
            -1,
            -1e-9,
            -math.inf,
            5e-324,
            1e-300,
            1e-9,
            2.5e-7,
            math.nan,
            -math.nan,
            math.inf,
            2**31 / 1e3,
            (2**31 - 1) / 1e3,
            2147483.6475,
            2147483.6465,
            2147483,
            2147484,
            2**63 / 1e9,
            (2**63 - 1) / 1e9,
            9223372036.85,
            9223372036.854775,
            9223372036,
            9223372037,
            2**31,
            2**63,
            2**64,
            1,
            1.0,
            3600.5,
        ]
    ),
    st.floats(min_value=2147483.0, max_value=2147484.0),
    st.floats(min_value=9223372036.0, max_value=9223372037.0),
    st.floats(min_value=-1.0, max_value=1e-6),
)
# The longest timeout each backend takes (seconds).
TIMEOUT_LIMIT = {"epoll": 2147483.647, "poll": 2147483.647, "select": 9223372036.854775807}
# Timeouts that make a real wait (a second or more), up to each limit: the
# signals of "quiet" and "raising" land inside it.
LONG_TIMEOUTS = {
    name: st.one_of(
        st.sampled_from(
            [None, 1, 1.0, 3600.5, 2147483, 2147483.0, 2147483.646]
            + ([2**31 / 1e3, 2**62 / 1e9, 9223372036.85, 9223372036] if name == "select" else [])
        ),
        st.floats(min_value=1.0, max_value=limit * 0.9999),
    )
    for name, limit in TIMEOUT_LIMIT.items()
}


def _timeout_kind(timeout, limit):
    """ "short": a timeout with which select() returns at once (or fails);
    "long" or "unsure" (near the limit, where only the selectors know
    whether they take it) otherwise."""
    if timeout is None:
        return "long"
    if not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout <= 1e-3:
        return "short"
    if timeout >= limit * 1.0001:
        return "short"  # refused (inf too)
    return "long" if timeout <= limit * 0.9999 else "unsure"


class EdgeBoom(Exception):
    pass


def _select_with(sel, timeout, mode, sender):
    """sel.select(timeout) with `mode`: "ready" (data waiting before),
    "quiet" (SIGALRM every ms interrupts the wait; the second one sends the
    data), "raising" (the first SIGALRM raises EdgeBoom), "idle" (nothing
    ready, no signal)."""
    calls = []

    def quiet(signum, frame):
        calls.append(1)
        if len(calls) == 2:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sender.send(b"x")

    def raising(signum, frame):
        if not calls:  # once: another signal may be pending
            calls.append(1)
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise EdgeBoom

    if mode == "ready":
        sender.send(b"x")
    previous = signal.getsignal(signal.SIGALRM)
    try:
        if mode in ("quiet", "raising"):
            signal.signal(signal.SIGALRM, quiet if mode == "quiet" else raising)
            # Repeating: a signal that lands just before the syscall is
            # handled once the wait ends; the next one interrupts it.
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        return outcome(sel.select, timeout)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_timeouts_at_the_edges_under_signals_behave_as_the_stdlib(backend, data):
    mode = data.draw(st.sampled_from(["ready", "quiet", "raising", "idle"]), label="mode")
    if mode in ("quiet", "raising"):
        # A signal after a wait that ended would land outside select().
        timeout = data.draw(LONG_TIMEOUTS[backend.name], label="timeout")
    else:
        timeout = data.draw(EDGE_TIMEOUTS, label="timeout")
        if mode == "idle" and _timeout_kind(timeout, TIMEOUT_LIMIT[backend.name]) != "short":
            mode = "ready"  # a wait that must end
    event(f"mode: {mode}")
    a, b = socket.socketpair()
    outcomes = []
    try:
        for make in (backend.stdlib, backend.ours):
            with make() as sel:
                sel.register(a, reactor.EVENT_READ, "a")
                result = _select_with(sel, timeout, mode, b)
                a.setblocking(False)
                while True:
                    try:
                        a.recv(100)
                    except BlockingIOError:
                        break
                outcomes.append(result)
                # Whatever happened, the selector waits again, from this
                # thread and from another (its wait state was released).
                assert sel.select(0) == []
                if make is backend.ours:
                    assert sel._state.owner == 0
        std, ours = outcomes
        assert ours.signature() == std.signature(), (timeout, mode, std, ours)
    finally:
        a.close()
        b.close()
