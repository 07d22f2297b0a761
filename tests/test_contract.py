"""The drop-in contract: reactor's selectors behave exactly like the stdlib
selector of the same backend on the running Python.

Every test runs for each backend (epoll, poll, select) and, where a file object
is involved, once with the socket object and once with its bare fileno().  Most
tests are differential (``Diff`` calls the stdlib selector and ours in lockstep
on the same fds and compares return values, exception types and get_map());
each also pins the expected outcome explicitly so that a change in the stdlib
cannot silently turn a test into a tautology.
"""

import collections.abc
import enum
import errno
import inspect
import math
import os
import selectors
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reactor
from _support import (
    EVENT_READ,
    EVENT_WRITE,
    Diff,
    fill,
    outcome,
    ready_set,
    unused_tcp_port,
)

BOTH = EVENT_READ | EVENT_WRITE


# --------------------------------------------------------------------------
# Public surface


def test_public_names_match_stdlib():
    assert reactor.DefaultSelector is reactor.EpollSelector
    assert reactor.SelectorKey is selectors.SelectorKey
    assert reactor.EVENT_READ == selectors.EVENT_READ == 1
    assert reactor.EVENT_WRITE == selectors.EVENT_WRITE == 2


def test_classes_are_reactors_own(backend):
    # Guards every differential test below from comparing the stdlib with
    # itself.
    assert backend.ours is not backend.stdlib
    assert not issubclass(backend.ours, backend.stdlib)
    assert backend.ours.__module__.split(".")[0] == "reactor"


def test_instances_are_base_selectors(sel):
    assert isinstance(sel, selectors.BaseSelector)


def test_fileno_only_on_epoll(sel, stdsel, backend):
    assert hasattr(sel, "fileno") == hasattr(stdsel, "fileno")
    assert hasattr(sel, "fileno") == (backend.name == "epoll")
    if backend.name == "epoll":
        fd = sel.fileno()
        assert isinstance(fd, int) and fd >= 0
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"


@pytest.mark.parametrize(
    "method",
    [
        "__init__",
        "register",
        "unregister",
        "modify",
        "select",
        "close",
        "get_key",
        "get_map",
        "__enter__",
        "__exit__",
    ],
)
def test_signatures_match_stdlib(backend, method):
    ours = inspect.signature(getattr(backend.ours, method))
    std = inspect.signature(getattr(backend.stdlib, method))
    positional = [
        (p.name, p.kind, p.default)
        for p in ours.parameters.values()
        if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    assert positional == [(p.name, p.kind, p.default) for p in std.parameters.values()]
    # The only extra parameter anywhere is epoll's keyword-only `flags`.
    extra = [p.name for p in ours.parameters.values() if p.kind is p.KEYWORD_ONLY]
    if backend.name == "epoll" and method in ("register", "modify"):
        assert extra == ["flags"]
    else:
        assert extra == []


def test_context_manager_closes(backend):
    with backend.ours() as s:
        assert isinstance(s, backend.ours)
        assert s.get_map() is not None
    assert s.get_map() is None
    with pytest.raises(RuntimeError):
        s.get_key(0)


def test_creation_when_out_of_fds(backend):
    # epoll_create1 fails with EMFILE: OSError as in the stdlib, and the
    # half-built object is collected without an error; poll and select
    # need no fd.
    import gc
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
    try:
        std = outcome(backend.stdlib)
        ours = outcome(backend.ours)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for o in (std, ours):
        if not o.raised:
            o.value.close()
    assert type(ours.exc) is type(std.exc)
    if backend.name == "epoll":
        assert ours.exc.errno == errno.EMFILE
    del std, ours
    gc.collect()


def test_close_twice_is_harmless(sel):
    sel.close()
    assert sel.close() is None
    assert sel.get_map() is None


# --------------------------------------------------------------------------
# register()


class Flag(enum.IntFlag):
    R = 1
    W = 2


@pytest.mark.parametrize(
    "events",
    [0, 4, 7, 8, -1, -2, 2**31, 2**70, "1", 1.0, None, True, 1, 2, 3, Flag.R | Flag.W],
    ids=repr,
)
def test_register_event_masks(backend, as_fileobj, socketpair, events):
    a, _ = socketpair
    with Diff(backend) as d:
        ours = d.call("register", as_fileobj(a), events)
        valid = isinstance(events, int) and events in (1, 2, 3)
        assert ours.raised == (not valid)
        if valid:
            # The stdlib keeps the caller's object (True stays True, a flag
            # stays a flag).
            assert ours.value.events is events
        elif isinstance(events, (str, float)):
            assert isinstance(ours.exc, TypeError)
        else:
            assert isinstance(ours.exc, ValueError)


class RaisingFileno:
    def __init__(self, exc):
        self.exc = exc

    def fileno(self):
        raise self.exc

    def __repr__(self):
        return f"RaisingFileno({self.exc!r})"


class ReturningFileno:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value

    def __repr__(self):
        return f"ReturningFileno({self.value!r})"


def bad_fileobjs(sock):
    """(object, stdlib-documented exception type on epoll) pairs."""
    fd = sock.fileno()
    return [
        (-1, ValueError),
        (-(2**70), ValueError),
        (2**31, OverflowError),
        (2**63, OverflowError),
        (2**70, OverflowError),
        (1.0, ValueError),
        (float(fd), ValueError),
        (str(fd), ValueError),
        (None, ValueError),
        (object(), ValueError),
        (RaisingFileno(ValueError("no fd")), ValueError),
        (RaisingFileno(TypeError("no fd")), ValueError),
        (RaisingFileno(AttributeError("no fd")), ValueError),
        (RaisingFileno(RuntimeError("not converted")), RuntimeError),
        (ReturningFileno(-1), ValueError),
        (ReturningFileno(None), ValueError),
        (ReturningFileno("x"), ValueError),
        (ReturningFileno(2**40), OverflowError),
        (ReturningFileno(2**70), OverflowError),
    ]


BAD_IDS = [
    "-1",
    "-2**70",
    "2**31",
    "2**63",
    "2**70",
    "1.0",
    "float_fd",
    "str_fd",
    "None",
    "object",
    "fileno_ValueError",
    "fileno_TypeError",
    "fileno_AttributeError",
    "fileno_RuntimeError",
    "fileno_-1",
    "fileno_None",
    "fileno_x",
    "fileno_2**40",
    "fileno_2**70",
]


@pytest.mark.parametrize("index", range(len(BAD_IDS)), ids=BAD_IDS)
def test_register_invalid_fileobj(backend, socketpair, index):
    a, _ = socketpair
    obj, epoll_exc = bad_fileobjs(a)[index]
    with Diff(backend) as d:
        ours = d.call("register", obj, EVENT_READ)
        if backend.name == "epoll":
            assert type(ours.exc) is epoll_exc
        # No key is left behind by a failed register.
        if ours.raised:
            assert len(d.ours.get_map()) == 0
        # And the same object is rejected the same way by the other methods.
        for method in ("unregister", "get_key"):
            d.call(method, obj)
        d.call("modify", obj, EVENT_WRITE)


def test_register_fileno_returning_convertible_values(backend, socketpair):
    # The stdlib applies int() to whatever fileno() returns.
    a, _ = socketpair
    for obj in (ReturningFileno(a.fileno() + 0.5), ReturningFileno(str(a.fileno()))):
        with Diff(backend) as d:
            ours = d.call("register", obj, EVENT_READ)
            assert ours.value.fd == a.fileno()
            assert ours.value.fileobj is obj
            d.call("get_key", a.fileno())
            d.call("unregister", obj)


def test_register_int_subclass_fd(backend, socketpair):
    # An int subclass is taken as the fd itself (isinstance(fd, int)).
    a, b = socketpair
    FD = enum.IntEnum("FD", {"A": a.fileno()})
    with Diff(backend) as d:
        key = d.call("register", FD.A, EVENT_READ).value
        assert key.fd is FD.A and key.fileobj is FD.A
        b.send(b"x")
        d.select(0)
        d.call("modify", a.fileno(), EVENT_WRITE)
        d.call("unregister", a)


def test_register_returns_key_and_get_key_returns_it(backend, as_fileobj, socketpair):
    a, _ = socketpair
    f = as_fileobj(a)
    data = object()
    with Diff(backend) as d:
        ours = d.call("register", f, EVENT_READ, data)
        key = ours.value
        assert key == selectors.SelectorKey(f, a.fileno(), EVENT_READ, data)
        assert type(key) is selectors.SelectorKey
        assert d.ours.get_key(f) is key
        assert d.ours.get_key(a) is key
        assert d.ours.get_key(a.fileno()) is key
        assert d.ours.get_map()[a.fileno()] is key
        d.call("get_key", a)
        d.call("get_key", a.fileno())


def test_register_default_data_is_none(sel, socketpair):
    a, _ = socketpair
    assert sel.register(a, EVENT_READ).data is None


@pytest.mark.parametrize("second", ["same", "other_form"])
def test_duplicate_registration_raises_keyerror(backend, as_fileobj, socketpair, second):
    a, _ = socketpair
    f = as_fileobj(a)
    with Diff(backend) as d:
        first = d.call("register", f, EVENT_READ, "first").value
        again = f if second == "same" else (a.fileno() if f is a else a)
        ours = d.call("register", again, EVENT_WRITE, "second")
        assert isinstance(ours.exc, KeyError)
        assert d.ours.get_key(a) is first


def test_register_regular_file(backend, as_fileobj, tmp_path):
    # epoll refuses regular files with EPERM; poll/select accept them.
    with open(tmp_path / "f", "wb") as fh:
        f = as_fileobj(fh)
        with Diff(backend) as d:
            ours = d.call("register", f, EVENT_READ)
            if backend.name == "epoll":
                assert type(ours.exc) is PermissionError
                assert len(d.ours.get_map()) == 0
            else:
                assert not ours.raised
                d.select(0)


def test_register_closed_fd_number(backend, socketpair):
    a, _ = socketpair
    with Diff(backend) as d:
        # Made after the selectors, so that no selector's own fd takes the
        # freed number.
        fd = os.dup(a.fileno())
        os.close(fd)
        ours = d.call("register", fd, EVENT_READ)
        if backend.name == "epoll":
            assert type(ours.exc) is OSError and ours.exc.errno == errno.EBADF
            assert len(d.ours.get_map()) == 0
        else:
            assert not ours.raised
            # poll reports POLLNVAL as read|write; select() raises EBADF.
            d.select(0)


def test_register_closed_socket_object(backend, make_socketpair):
    a, _ = make_socketpair()
    a.close()
    with Diff(backend) as d:
        ours = d.call("register", a, EVENT_READ)
        assert isinstance(ours.exc, ValueError)  # fileno() is -1


# --------------------------------------------------------------------------
# unregister(), modify(), get_key() of unknown objects


@pytest.mark.parametrize("method", ["unregister", "modify", "get_key"])
def test_unknown_fileobj_raises_keyerror(backend, as_fileobj, make_socketpair, method):
    a, _ = make_socketpair()
    c, _ = make_socketpair()
    args = (EVENT_READ,) if method == "modify" else ()
    with Diff(backend) as d:
        ours = d.call(method, as_fileobj(a), *args)
        assert isinstance(ours.exc, KeyError)
        d.call("register", as_fileobj(c), EVENT_READ)
        ours = d.call(method, as_fileobj(a), *args)
        assert isinstance(ours.exc, KeyError)
        d.call("unregister", as_fileobj(c))
        ours = d.call(method, as_fileobj(c), *args)
        assert isinstance(ours.exc, KeyError)


def test_unregister_returns_key_and_forgets(backend, as_fileobj, socketpair):
    a, b = socketpair
    f = as_fileobj(a)
    with Diff(backend) as d:
        key = d.call("register", f, EVENT_READ, "x").value
        b.send(b"ping")
        assert d.call("unregister", f).value is key
        assert d.select(0).value == []
        assert isinstance(d.call("unregister", f).exc, KeyError)
        # Re-registering after unregister works.
        d.call("register", f, EVENT_READ, "y")
        assert ready_set(d.select(0).value) == {(a.fileno(), EVENT_READ)}


def test_register_and_unregister_through_the_other_form(backend, as_fileobj, socketpair):
    a, b = socketpair
    f = as_fileobj(a)
    other = a.fileno() if f is a else a
    with Diff(backend) as d:
        d.call("register", f, EVENT_READ)
        d.call("get_key", other)
        d.call("modify", other, EVENT_WRITE, "via other")
        d.call("modify", other, EVENT_READ)
        d.select(0)
        d.call("unregister", other)


# --------------------------------------------------------------------------
# modify()


@pytest.mark.parametrize("events", [0, 4, 7, -1, 2**70, "1", 1.0, None, True, 1, 2, 3], ids=repr)
def test_modify_event_masks(backend, as_fileobj, socketpair, events):
    # stdlib quirk: Epoll/PollSelector.modify accept any int mask (even 0 or
    # 4); SelectSelector.modify unregisters and then fails in register().
    a, b = socketpair
    f = as_fileobj(a)
    with Diff(backend) as d:
        d.call("register", f, EVENT_READ, "data")
        ours = d.call("modify", f, events)
        if events in (1, 2, 3) and type(events) is int:
            assert not ours.raised
        if backend.name == "select" and events in (0, 4, 7, -1, 2**70, None):
            assert isinstance(ours.exc, ValueError)
            assert len(d.ours.get_map()) == 0
        if backend.name != "select" and events in (0, 4):
            assert ours.value.events == events
        b.send(b"data")
        d.select(0)
        b.close()  # HUP: reported even with an empty interest mask
        d.select(0)


def test_modify_to_zero_reports_hup_as_zero_mask(backend, as_fileobj, socketpair):
    a, b = socketpair
    f = as_fileobj(a)
    with Diff(backend) as d:
        key = d.call("register", f, EVENT_READ).value
        ours = d.call("modify", f, 0)
        if backend.name == "select":
            assert isinstance(ours.exc, ValueError)
            return
        assert d.select(0).value == []
        b.close()
        result = d.select(0).value
        assert [(k.fd, m) for k, m in result] == [(key.fd, 0)]


def test_modify_semantics(backend, as_fileobj, socketpair):
    a, _ = socketpair
    f = as_fileobj(a)
    with Diff(backend) as d:
        key = d.call("register", f, EVENT_READ, 1).value
        # Nothing changes: the same key object comes back.
        assert d.call("modify", f, EVENT_READ, 1).value is key
        # Equal data (1.0 == 1): the stdlib keeps the old data object.
        same = d.call("modify", f, EVENT_READ, 1.0).value
        assert same is key and type(same.data) is int
        # Data-only change.
        k2 = d.call("modify", f, EVENT_READ, "two").value
        assert k2 == selectors.SelectorKey(f, a.fileno(), EVENT_READ, "two")
        assert d.ours.get_key(f) is k2
        # Events change; data defaults to None.
        k3 = d.call("modify", f, BOTH).value
        assert k3.events == BOTH and k3.data is None
        assert ready_set(d.select(0).value) == {(a.fileno(), EVENT_WRITE)}
        k4 = d.call("modify", f, EVENT_READ, "four").value
        assert d.select(0).value == []
        assert d.ours.get_key(a) is k4


def test_modify_with_a_different_fileobj_form(backend, as_fileobj, socketpair):
    # SelectSelector.modify re-registers with the object passed to modify();
    # the poll-like ones keep the registered one.
    a, _ = socketpair
    f = as_fileobj(a)
    other = a.fileno() if f is a else a
    with Diff(backend) as d:
        d.call("register", f, EVENT_READ)
        key = d.call("modify", other, EVENT_WRITE).value
        expected = other if backend.name == "select" else f
        assert key.fileobj is expected


def test_modify_closed_fd_mask_change(backend, make_socketpair):
    # epoll_ctl(MOD) fails with EBADF; like the stdlib, the key is dropped.
    a, _ = make_socketpair()
    fd = os.dup(a.fileno())
    with Diff(backend) as d:
        d.call("register", fd, EVENT_READ, "d")
        os.close(fd)
        ours = d.call("modify", fd, EVENT_WRITE, "d")
        if backend.name == "epoll":
            assert type(ours.exc) is OSError and ours.exc.errno == errno.EBADF
            assert len(d.ours.get_map()) == 0
        else:
            assert not ours.raised
            assert len(d.ours.get_map()) == 1
            d.call("unregister", fd)


def test_modify_closed_fd_data_only(backend, make_socketpair):
    # A data-only change makes no syscall, so it succeeds on a closed fd.
    a, _ = make_socketpair()
    fd = os.dup(a.fileno())
    with Diff(backend) as d:
        d.call("register", fd, EVENT_READ, "d")
        os.close(fd)
        ours = d.call("modify", fd, EVENT_READ, "e")
        assert ours.value.data == "e"
        d.call("unregister", fd)


# --------------------------------------------------------------------------
# unregister() of closed files


def test_unregister_closed_fd_returns_key(backend, make_socketpair):
    a, _ = make_socketpair()
    fd = os.dup(a.fileno())
    with Diff(backend) as d:
        key = d.call("register", fd, EVENT_READ).value
        os.close(fd)
        assert d.call("unregister", fd).value is key
        assert len(d.ours.get_map()) == 0


def test_unregister_closed_socket_object_by_identity(backend, make_socketpair):
    a, _ = make_socketpair()
    with Diff(backend) as d:
        key = d.call("register", a, EVENT_READ).value
        a.close()
        assert a.fileno() == -1
        d.call("get_key", a)
        assert d.call("unregister", a).value is key
        assert len(d.ours.get_map()) == 0


def test_get_key_of_closed_socket_object_by_identity(backend, make_socketpair):
    a, _ = make_socketpair()
    with Diff(backend) as d:
        key = d.call("register", a, EVENT_WRITE).value
        a.close()
        assert d.call("get_key", a).value is key
        assert d.ours.get_map()[a] is key


# --------------------------------------------------------------------------
# get_map()


def test_get_map_is_live_read_only_mapping(backend, as_fileobj, make_socketpair):
    a, _ = make_socketpair()
    c, _ = make_socketpair()
    with Diff(backend) as d:
        m = d.ours.get_map()
        assert isinstance(m, collections.abc.Mapping)
        assert len(m) == 0 and list(m) == []
        ka = d.call("register", as_fileobj(a), EVENT_READ).value
        kc = d.call("register", as_fileobj(c), EVENT_WRITE).value
        assert len(m) == 2
        assert sorted(m) == sorted([a.fileno(), c.fileno()])
        assert m[a] is ka and m[a.fileno()] is ka and m[as_fileobj(c)] is kc
        assert a in m and a.fileno() in m and 99999 not in m
        assert dict(m.items()) == {a.fileno(): ka, c.fileno(): kc}
        with pytest.raises(TypeError):
            m[a.fileno()] = ka
        with pytest.raises(TypeError):
            del m[a.fileno()]
        assert not hasattr(m, "pop") and not hasattr(m, "clear")
        d.call("unregister", as_fileobj(a))
        assert len(m) == 1 and a not in m
        with pytest.raises(KeyError):
            m[a]


@pytest.mark.parametrize("probe", ["x", 1.5, None, -1, 2**70])
def test_get_map_lookup_of_invalid_objects(backend, probe):
    # Mapping.__contains__ only swallows KeyError: an invalid object raises
    # the lookup's ValueError in the stdlib.
    with Diff(backend) as d:
        std = outcome(lambda: probe in d.std.get_map())
        ours = outcome(lambda: probe in d.ours.get_map())
        assert ours.signature() == std.signature()
        std = outcome(lambda: d.std.get_map()[probe])
        ours = outcome(lambda: d.ours.get_map()[probe])
        assert ours.signature() == std.signature()
        std = outcome(lambda: d.std.get_map().get(probe, "default"))
        ours = outcome(lambda: d.ours.get_map().get(probe, "default"))
        assert ours.signature() == std.signature()


def test_get_map_after_close(backend, socketpair):
    a, _ = socketpair
    s = backend.ours()
    m = s.get_map()
    s.register(a, EVENT_READ)
    s.close()
    assert s.get_map() is None
    # A mapping obtained before close() is left empty, as in the stdlib.
    std = backend.stdlib()
    sm = std.get_map()
    std.register(a, EVENT_READ)
    std.close()
    assert len(m) == len(sm) == 0


# --------------------------------------------------------------------------
# close()


def test_use_after_close(backend, as_fileobj, make_socketpair):
    a, b = make_socketpair()
    c, d_peer = make_socketpair()
    with Diff(backend) as d:
        d.call("register", as_fileobj(a), EVENT_READ)
        d.call("close")
        assert d.ours.get_map() is None
        ours = d.call("get_key", as_fileobj(a))
        assert isinstance(ours.exc, RuntimeError)
        d.call("unregister", as_fileobj(a))
        d.call("modify", as_fileobj(a), EVENT_WRITE)
        ours = d.call("select", 0)
        if backend.name == "epoll":
            assert isinstance(ours.exc, ValueError)
            ours = outcome(d.ours.fileno)
            assert isinstance(ours.exc, ValueError)
        ours = d.call("register", as_fileobj(c), EVENT_READ, "after")
        if backend.name == "epoll":
            assert isinstance(ours.exc, ValueError)
        else:
            assert not ours.raised
        d_peer.send(b"x")
        b.send(b"x")
        d.call("select", 0)
        d.call("unregister", as_fileobj(c))
        d.call("select", 0)
        d.call("close")
        assert d.ours.__enter__() is d.ours


def nr_open():
    with open("/proc/sys/fs/nr_open") as fh:
        return int(fh.read())


@pytest.mark.parametrize(
    "which", ["closed_low_fd", "50000", "nr_open", "2**31-1", "2**31", "regular_file"]
)
def test_register_after_close_any_fd(backend, socketpair, tmp_path, which):
    # A closed EpollSelector refuses every registration with ValueError
    # (the closed check comes before the kernel's), except for numbers that
    # do not fit a C int (OverflowError, from the argument conversion).
    a, _ = socketpair
    with Diff(backend) as d, open(tmp_path / "f", "wb") as fh:
        d.call("close")
        fd = os.dup(a.fileno())
        os.close(fd)
        fd = {
            "closed_low_fd": fd,
            "50000": 50000,
            "nr_open": nr_open(),
            "2**31-1": 2**31 - 1,
            "2**31": 2**31,
            "regular_file": fh.fileno(),
        }[which]
        ours = d.call("register", fd, EVENT_READ)
        if backend.name == "epoll":
            assert type(ours.exc) is (OverflowError if fd >= 2**31 else ValueError)


def test_reregister_after_close_reports_every_ready_fd(backend, make_socketpair):
    # Regression: SelectSelector keeps its fd sets across close() (as the
    # stdlib does) but sized its result buffer by the keys alone, so after
    # close() + re-register the fds from before took the buffer's slots and
    # ready new keys went missing (40 old + 30 new fds: 24 reported).
    old = [make_socketpair() for _ in range(40)]
    new = [make_socketpair() for _ in range(30)]
    with Diff(backend) as d:
        for a, _ in old:
            d.call("register", a, EVENT_WRITE)
        d.call("close")
        for a, _ in new:
            d.call("register", a, EVENT_WRITE)
        ours = d.select(0)
        if backend.name == "epoll":  # closed for good
            assert type(ours.exc) is ValueError
        else:
            expected = {(a.fileno(), EVENT_WRITE) for a, _ in new}
            assert ready_set(ours.value) == expected


def test_select_after_close_with_previously_registered_fd_closed(backend, make_socketpair):
    # stdlib SelectSelector.close() keeps its fd sets, so a registration made
    # before close() whose fd is closed later still makes select() raise
    # EBADF; PollSelector's poll object silently drops the POLLNVAL.
    a, _ = make_socketpair()
    with Diff(backend) as d:
        d.call("register", a, EVENT_READ)
        d.call("close")
        a.close()
        d.call("select", 0)


# --------------------------------------------------------------------------
# select(): readiness and masks


def test_select_readiness(backend, as_fileobj, socketpair):
    a, b = socketpair
    f = as_fileobj(a)
    with Diff(backend) as d:
        assert d.select(0).value == []
        key = d.call("register", f, EVENT_READ).value
        assert d.select(0).value == []
        b.send(b"hello")
        result = d.select(0).value
        assert result == [(key, EVENT_READ)]
        assert result[0][0] is d.ours.get_key(f)
        key = d.call("modify", f, BOTH).value
        assert ready_set(d.select(0).value) == {(a.fileno(), BOTH)}
        key = d.call("modify", f, EVENT_WRITE).value
        assert d.select(0).value == [(key, EVENT_WRITE)]
        a.recv(100)
        key = d.call("modify", f, BOTH).value
        assert d.select(0).value == [(key, EVENT_WRITE)]
        fill(a)
        assert d.select(0).value == []


def hup_peer_closed():
    a, b = socket.socketpair()
    b.close()
    return a, [a]


def hup_peer_shutdown():
    a, b = socket.socketpair()
    b.shutdown(socket.SHUT_WR)
    return a, [a, b]


def err_pipe_reader_closed():
    r, w = os.pipe()
    os.close(r)
    return w, [w]


def err_connection_refused():
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", unused_tcp_port()))
    except OSError:
        pass
    # Wait (at most 5 s) for the RST to land so both selectors see the error.
    sel = selectors.PollSelector()
    sel.register(c, EVENT_WRITE)
    sel.select(5)
    sel.close()
    return c, [c]


@pytest.mark.parametrize(
    "condition",
    [hup_peer_closed, hup_peer_shutdown, err_pipe_reader_closed, err_connection_refused],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("events", [EVENT_READ, EVENT_WRITE, BOTH])
def test_hup_and_err_reported_masked_by_interest(backend, as_fileobj, condition, events):
    fobj, to_close = condition()
    try:
        f = as_fileobj(fobj)
        with Diff(backend) as d:
            key = d.call("register", f, events).value
            result = d.select(0).value
            assert result == [(key, events)]
    finally:
        for x in to_close:
            x.close() if hasattr(x, "close") else os.close(x)


def test_select_registered_fd_closed(backend, make_socketpair):
    # epoll drops a closed fd from its interest list; poll reports POLLNVAL as
    # read|write; select() raises EBADF.
    a, b = make_socketpair()
    fd = os.dup(a.fileno())
    with Diff(backend) as d:
        key = d.call("register", fd, EVENT_READ).value
        os.close(fd)
        ours = d.select(0)
        expected = {
            "epoll": [],
            "poll": [(key, EVENT_READ)],
        }
        if backend.name == "select":
            assert type(ours.exc) is OSError and ours.exc.errno == errno.EBADF
        else:
            assert ours.value == expected[backend.name]
        d.call("unregister", fd)
        assert d.select(0).value == []


def test_select_reports_every_ready_fd(backend, make_socketpair):
    # More ready fds than any small fixed event buffer.
    pairs = [make_socketpair() for _ in range(300)]
    with Diff(backend) as d:
        for i, (a, b) in enumerate(pairs):
            d.ours.register(a, BOTH, i)
            d.std.register(a, BOTH, i)
            if i % 3 == 0:
                b.send(b"x")
        result = d.select(0).value
        assert len(result) == 300
        assert ready_set(result) == {
            (a.fileno(), BOTH if i % 3 == 0 else EVENT_WRITE) for i, (a, _) in enumerate(pairs)
        }
        for key, _ in result:
            assert key.data == [a.fileno() for a, _ in pairs].index(key.fd)


def test_select_on_empty_selector(backend):
    with Diff(backend) as d:
        assert d.select(0).value == []
        assert d.select(0.001).value == []
        assert d.select(-1).value == []


def test_key_identity_relations_match_stdlib(backend, as_fileobj, socketpair):
    a, b = socketpair
    f = as_fileobj(a)
    for s in (backend.stdlib(), backend.ours()):
        key = s.register(f, EVENT_READ, "x")
        b.send(b"x")
        [(reported, mask)] = s.select(0)
        a.recv(10)
        # The reported key is the registered key object itself.
        assert reported is key is s.get_key(f)
        s.close()


# --------------------------------------------------------------------------
# select(): timeouts


TIMEOUTS = [
    float("nan"),
    float("inf"),
    -float("inf"),
    1e300,
    -1e300,
    "1",
    1j,
    None,
    -1,
    0,
    0.0,
    -0.0,
    1,
    True,
    2147483,
    2147483.646,
    2147483.647,
    2147483.6471,
    2147483.648,
    2147484,
    2**31,
    1e9,
    9.3e9,
    2**63,
    2**70,
]


@pytest.mark.parametrize("timeout", TIMEOUTS, ids=repr)
def test_select_timeout_values(backend, socketpair, timeout):
    # A ready fd makes every accepted timeout return at once, so this test
    # never blocks; the invalid ones must raise before waiting.
    a, b = socketpair
    b.send(b"x")
    with Diff(backend) as d:
        d.call("register", a, EVENT_READ)
        ours = d.select(timeout)
        if isinstance(timeout, float) and math.isnan(timeout):
            assert type(ours.exc) is ValueError
        elif timeout in ("1", 1j):
            assert type(ours.exc) is TypeError
        elif timeout in (float("inf"), 1e300, 2**70):
            assert type(ours.exc) is OverflowError
        elif (
            backend.name != "select"
            and isinstance(timeout, (int, float))
            and timeout > 2147483.647
        ):
            assert type(ours.exc) is OverflowError
        elif timeout is None or timeout <= 2147483.647:
            assert len(ours.value) == 1


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 1e300, "1", 2147483.648])
def test_select_invalid_timeout_raises_with_nothing_ready(backend, sel, timeout):
    # The check happens before waiting, also when nothing is registered.
    if backend.name == "select" and timeout == 2147483.648:
        # select() has no 2**31 ms limit: there this timeout is valid (and
        # would really block), so only epoll and poll refuse it.
        timeout = float("inf")
    std = backend.stdlib()
    expected = outcome(std.select, timeout)
    std.close()
    assert expected.raised
    ours = outcome(sel.select, timeout)
    assert type(ours.exc) is type(expected.exc)


@settings(max_examples=60, deadline=None)
@given(timeout=st.one_of(st.floats(allow_nan=True), st.integers(-(2**80), 2**80)))
def test_select_timeout_property(timeout):
    # Hypothesis over the whole float and int range (with a ready fd so that
    # no valid timeout blocks): same result or same exception type.
    a, b = socket.socketpair()
    b.send(b"x")
    try:
        for backend_cls, std_cls in (
            (reactor.EpollSelector, selectors.EpollSelector),
            (reactor.PollSelector, selectors.PollSelector),
            (reactor.SelectSelector, selectors.SelectSelector),
        ):
            ours_sel, std_sel = backend_cls(), std_cls()
            ours_sel.register(a, EVENT_READ)
            std_sel.register(a, EVENT_READ)
            std = outcome(std_sel.select, timeout)
            ours = outcome(ours_sel.select, timeout)
            ours_sel.close()
            std_sel.close()
            assert type(ours.exc) is type(std.exc), (backend_cls, timeout, std, ours)
            if not ours.raised:
                assert [m for _, m in ours.value] == [m for _, m in std.value]
    finally:
        a.close()
        b.close()


@settings(max_examples=60, deadline=None)
@given(events=st.one_of(st.integers(-(2**80), 2**80), st.integers(-8, 8)))
def test_register_and_modify_events_property(events):
    a, b = socket.socketpair()
    try:
        for backend_cls, std_cls in (
            (reactor.EpollSelector, selectors.EpollSelector),
            (reactor.PollSelector, selectors.PollSelector),
            (reactor.SelectSelector, selectors.SelectSelector),
        ):
            for method in ("register", "modify"):
                ours_sel, std_sel = backend_cls(), std_cls()
                if method == "modify":
                    ours_sel.register(a, EVENT_READ)
                    std_sel.register(a, EVENT_READ)
                std = outcome(getattr(std_sel, method), a, events)
                ours = outcome(getattr(ours_sel, method), a, events)
                assert ours.signature() == std.signature(), (backend_cls, method, events)
                assert dict(ours_sel.get_map().items()) == dict(std_sel.get_map().items())
                ours_sel.close()
                std_sel.close()
    finally:
        a.close()
        b.close()


def test_select_none_blocks_until_ready(sel, as_fileobj, socketpair):
    a, b = socketpair
    key = sel.register(as_fileobj(a), EVENT_READ)
    timer = threading.Timer(0.05, b.send, (b"late",))
    timer.start()
    try:
        assert sel.select(None) == [(key, EVENT_READ)]
    finally:
        timer.join()


def test_select_default_timeout_is_none(sel, socketpair):
    a, b = socketpair
    key = sel.register(a, EVENT_READ)
    timer = threading.Timer(0.05, b.send, (b"late",))
    timer.start()
    try:
        assert sel.select() == [(key, EVENT_READ)]
    finally:
        timer.join()


def test_select_positive_timeout_waits_at_least_timeout(sel, socketpair):
    a, _ = socketpair
    sel.register(a, EVENT_READ)
    start = time.monotonic()
    assert sel.select(0.05) == []
    assert time.monotonic() - start >= 0.05


@pytest.mark.parametrize("timeout", [0, -1, -0.5, 0.0, -0.0, -float("inf")])
def test_select_nonpositive_timeout_polls(sel, socketpair, timeout):
    a, b = socketpair
    key = sel.register(a, EVENT_READ)
    # Not a speed check: if select() blocked, the timer's data would wake it
    # after 2 s and it would return the key instead of [].
    timer = threading.Timer(2, b.send, (b"x",))
    timer.start()
    try:
        assert sel.select(timeout) == []
    finally:
        timer.cancel()
        timer.join()
    b.send(b"now")
    assert sel.select(timeout) == [(key, EVENT_READ)]


def test_wakeup_from_another_thread(sel, socketpair):
    a, b = socketpair
    key = sel.register(a, EVENT_READ)
    timer = threading.Timer(0.05, b.send, (b"x",))
    timer.start()
    try:
        assert sel.select(10) == [(key, EVENT_READ)]
    finally:
        timer.join()


# --------------------------------------------------------------------------
# fd number reuse


def test_fd_number_reuse_after_unregister_and_close(backend, as_fileobj):
    for impl in (backend.stdlib, backend.ours):
        s = impl()
        a, b = socket.socketpair()
        number = a.fileno()
        b.send(b"old data")
        s.register(as_fileobj(a), EVENT_READ, "old")
        s.unregister(as_fileobj(a))
        a.close()
        b.close()
        c, d = socket.socketpair()
        try:
            assert number in (c.fileno(), d.fileno())
            new = c if c.fileno() == number else d
            peer = d if new is c else c
            key = s.register(as_fileobj(new), EVENT_READ, "new")
            assert key.fd == number
            assert s.select(0) == []
            peer.send(b"new data")
            assert s.select(0) == [(key, EVENT_READ)]
            assert s.get_key(number).data == "new"
        finally:
            s.close()
            c.close()
            d.close()


# --------------------------------------------------------------------------
# Real use: asyncio's SelectorEventLoop on each backend


def test_asyncio_event_loop_runs_on_reactor_selectors(sel):
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=a)
        b.setblocking(False)
        try:
            await loop.sock_sendall(b, b"ping\n")
            assert await reader.readline() == b"ping\n"
            writer.write(b"pong" * 100000)
            received = b""
            while len(received) < 400000:
                received += await loop.sock_recv(b, 65536)
            assert received == b"pong" * 100000
            await writer.drain()
            fired = loop.create_future()
            loop.call_later(0.01, fired.set_result, "timer")
            assert await fired == "timer"
        finally:
            writer.close()
            await writer.wait_closed()
            b.close()
        return "done"

    loop = asyncio.SelectorEventLoop(sel)
    try:
        assert loop.run_until_complete(main()) == "done"
    finally:
        loop.close()  # closes the selector too
    assert sel.get_map() is None
