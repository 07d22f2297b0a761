"""Hypothesis state machines: random sequences of selector operations on a
small pool of socket pairs, applied in lockstep to reactor's selector and to
the stdlib selector of the same backend (separate instances, same fds).

After every step: same return value or exception type (``Diff.call``), same
get_map() contents, same select(0) results as sets of (fd, mask); and both
agree with a small model (a dict fd -> key and what we know of each socket).
"""

import errno
import socket

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import reactor

from _support import BACKENDS, EVENT_READ, EVENT_WRITE, Diff, drain, kernel_interest

POOL = 3
BOTH = EVENT_READ | EVENT_WRITE

index = st.integers(0, POOL - 1)
form = st.sampled_from(["object", "fileno"])
events = st.sampled_from([EVENT_READ, EVENT_WRITE, BOTH, 0, 4, "1", True, 1.0])
valid_events = st.sampled_from([EVENT_READ, EVENT_WRITE, BOTH])
data = st.sampled_from([None, "x", 1, 1.0, ("t", 1)])


class ModelError(Exception):
    """What the model predicts a call raises."""

    def __init__(self, exc_type, errno_=None):
        super().__init__(exc_type.__name__)
        self.exc_type = exc_type
        self.errno = errno_


class SelectorMachine(RuleBasedStateMachine):
    backend = None  # set by the per-backend subclasses below

    def __init__(self):
        super().__init__()
        self.pairs = [socket.socketpair() for _ in range(POOL)]
        self.fds = [a.fileno() for a, _ in self.pairs]
        self.pending = [i % 2 == 0 for i in range(POOL)]  # data waiting on a
        for i, (_, b) in enumerate(self.pairs):
            if self.pending[i]:
                b.send(b"initial")
        self.sock_closed = [False] * POOL
        self.peer_closed = [False] * POOL
        self.d = Diff(self.backend)
        self.model = {}  # fd -> SelectorKey-like tuple (fileobj, fd, events, data)
        self.closed = False

    def teardown(self):
        self.d.close()
        for a, b in self.pairs:
            a.close()
            b.close()

    # -- helpers --------------------------------------------------------

    @property
    def name(self):
        return self.backend.name

    def fileobj(self, i, form):
        return self.pairs[i][0] if form == "object" else self.fds[i]

    def lookup(self, fileobj):
        """The stdlib's _fileobj_lookup against the model."""
        if isinstance(fileobj, int):
            return fileobj
        if fileobj.fileno() >= 0:
            return fileobj.fileno()
        for fd, key in self.model.items():
            if key[0] is fileobj:
                return fd
        raise ModelError(ValueError)

    def fd_open(self, fd):
        return not self.sock_closed[self.fds.index(fd)]

    def check(self, outcome, expected):
        """Compare our outcome with the model's prediction."""
        if isinstance(expected, ModelError):
            assert outcome.raised, f"model expected {expected.exc_type}, got {outcome!r}"
            assert type(outcome.exc) is expected.exc_type, (expected.exc_type, outcome)
            if expected.errno is not None:
                assert outcome.exc.errno == expected.errno
        else:
            assert not outcome.raised, f"model expected {expected!r}, got {outcome!r}"
            assert tuple(outcome.value) == expected

    # -- model transitions ----------------------------------------------

    def model_register(self, fileobj, ev, data_):
        if not isinstance(ev, int):
            raise ModelError(TypeError)
        if ev not in (1, 2, 3):
            raise ModelError(ValueError)
        fd = self.lookup(fileobj)
        if fd in self.model:
            raise ModelError(KeyError)
        if self.name == "epoll":
            if self.closed:
                raise ModelError(ValueError)
            if not self.fd_open(fd):
                raise ModelError(OSError, errno.EBADF)
        key = (fileobj, fd, ev, data_)
        self.model[fd] = key
        return key

    def model_unregister(self, fileobj):
        fd = self.lookup(fileobj)
        if fd not in self.model:
            raise ModelError(KeyError)
        return self.model.pop(fd)

    def model_modify(self, fileobj, ev, data_):
        fd = self.lookup(fileobj)
        if fd not in self.model:
            raise ModelError(KeyError)
        key = self.model[fd]
        if self.name == "select":
            if ev != key[2]:
                self.model_unregister(fileobj)
                return self.model_register(fileobj, ev, data_)
            if data_ != key[3]:
                key = (key[0], fd, key[2], data_)
                self.model[fd] = key
            return key
        changed = False
        if ev != key[2]:
            if not isinstance(ev, int):
                raise ModelError(TypeError)
            if self.name == "epoll" and not self.fd_open(fd):
                del self.model[fd]
                raise ModelError(OSError, errno.EBADF)
            changed = True
        if data_ != key[3]:
            changed = True
        if changed:
            key = (key[0], fd, ev, data_)
            self.model[fd] = key
        return key

    def apply(self, method, model_fn, *args):
        try:
            expected = model_fn(*args)
        except ModelError as exc:
            expected = exc
        ours = self.d.call(method, *args)
        self.check(ours, expected)
        return ours

    # -- rules ----------------------------------------------------------

    @initialize(i=index, f=form, ev=valid_events, data_=data)
    def start_registered(self, i, f, ev, data_):
        self.apply("register", self.model_register, self.fileobj(i, f), ev, data_)

    @rule(i=index, f=form, ev=events, data_=data)
    def register(self, i, f, ev, data_):
        self.apply("register", self.model_register, self.fileobj(i, f), ev, data_)

    @rule(i=index, f=form, ev=valid_events, data_=data)
    def register_valid(self, i, f, ev, data_):
        self.apply("register", self.model_register, self.fileobj(i, f), ev, data_)

    @rule(i=index, f=form, ev=events, data_=data)
    def modify(self, i, f, ev, data_):
        self.apply("modify", self.model_modify, self.fileobj(i, f), ev, data_)

    @rule(i=index, f=form)
    def unregister(self, i, f):
        self.apply("unregister", self.model_unregister, self.fileobj(i, f))

    @rule(i=index, f=form)
    def get_key(self, i, f):
        def model_get_key(fileobj):
            if self.closed:
                raise ModelError(RuntimeError)
            fd = self.lookup(fileobj)
            if fd not in self.model:
                raise ModelError(KeyError)
            return self.model[fd]

        self.apply("get_key", model_get_key, self.fileobj(i, f))

    @rule()
    def select(self):
        ours = self.d.select(0)
        expected = self.model_select()
        if expected is None:
            return
        if isinstance(expected, ModelError):
            self.check(ours, expected)
            return
        assert not ours.raised, ours
        got = {(k.fd, m) for k, m in ours.value}
        assert len(got) == len(ours.value)
        assert got == expected
        for key, _ in ours.value:
            assert tuple(key) == self.model[key.fd]

    def model_select(self):
        """Predicted select(0) result as a set of (fd, mask); None: unknown."""
        if self.closed:
            if self.name == "epoll":
                return ModelError(ValueError)
            return None  # kernel state kept from before close(): not modelled
        result = set()
        odd = False  # a reported key whose events is a float (see below)
        for fd, (_, _, ev, _) in self.model.items():
            i = self.fds.index(fd)
            if isinstance(ev, float):
                # stdlib quirk: Poll/EpollSelector.modify(f, 1.0, new_data)
                # on a key with events 1 stores 1.0; select() then fails on
                # `mask & key.events` if that fd is reported.
                ev = int(ev)
                before = len(result)
            else:
                before = None
            interest = ev & BOTH
            if self.sock_closed[i]:
                if self.name == "select":
                    return ModelError(OSError, errno.EBADF)
                if self.name == "poll":  # POLLNVAL, whatever the interest
                    result.add((fd, ev & BOTH))
                    odd = odd or before is not None
                continue  # epoll dropped the closed fd
            if self.peer_closed[i]:  # HUP, whatever the interest
                result.add((fd, ev & BOTH))
                odd = odd or before is not None
                continue
            ready = EVENT_WRITE | (EVENT_READ if self.pending[i] else 0)
            if interest & ready:
                result.add((fd, ready & ev))
            if before is not None and len(result) > before:
                odd = True
        if odd:
            return ModelError(TypeError)
        return result

    @rule()
    def close_selector(self):
        self.d.call("close")
        self.closed = True
        # close() forgets every key; Poll/SelectSelector stay usable after.
        self.model.clear()

    @rule(i=index)
    def send(self, i):
        if not self.peer_closed[i] and not self.sock_closed[i]:
            self.pairs[i][1].send(b"data")
            self.pending[i] = True

    @rule(i=index)
    def drain(self, i):
        if not self.sock_closed[i]:
            drain(self.pairs[i][0])
            self.pending[i] = False

    @rule(i=index)
    def close_peer(self, i):
        self.pairs[i][1].close()
        self.peer_closed[i] = True

    @rule(i=index)
    def close_socket(self, i):
        # Its fd number stays free for the rest of the example: nothing else
        # opens fds while the machine runs.
        self.pairs[i][0].close()
        self.sock_closed[i] = True

    @invariant()
    def maps_agree_with_model(self):
        self.d.check_map()
        our_map = self.d.ours.get_map()
        if self.closed:
            assert our_map is None
            return
        assert {fd: tuple(k) for fd, k in our_map.items()} == self.model


def make_test(backend):
    machine = type(
        f"{backend.name.capitalize()}SelectorMachine",
        (SelectorMachine,),
        {"backend": backend},
    )
    machine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
    return machine.TestCase


TestEpollStateful = make_test(BACKENDS[0])
TestPollStateful = make_test(BACKENDS[1])
TestSelectStateful = make_test(BACKENDS[2])


# --------------------------------------------------------------------------
# EpollSelector's flags (reactor only): a model of one-shot arming, checked
# against select(0) and against the kernel's own view (/proc fdinfo).


_FLAG_CHOICES = [
    0,
    reactor.EPOLLONESHOT,
    reactor.EPOLLRDHUP,
    reactor.EPOLLPRI,
    reactor.EPOLLONESHOT | reactor.EPOLLRDHUP,
]
_PRIVATE = reactor.EPOLLONESHOT | reactor.EPOLLET | reactor.EPOLLEXCLUSIVE
_KERNEL_INTEREST = {0: 0, 1: 0x001, 2: 0x004, 3: 0x005}  # EPOLLIN / EPOLLOUT


class EpollFlagsMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.pairs = [socket.socketpair() for _ in range(2)]
        self.pending = [False, False]
        self.sel = reactor.EpollSelector()
        self.model = {}  # fd -> dict(events, data, flags, armed)

    def teardown(self):
        self.sel.close()
        for a, b in self.pairs:
            a.close()
            b.close()

    def fd(self, i):
        return self.pairs[i][0].fileno()

    @initialize(
        ev=st.tuples(valid_events, valid_events),
        flags=st.tuples(st.sampled_from(_FLAG_CHOICES), st.sampled_from(_FLAG_CHOICES)),
    )
    def start_registered(self, ev, flags):
        # Start with both sockets registered so that short runs reach the
        # interesting states (a fired one-shot, then a modify).
        for i in range(2):
            self.register(i, ev[i], flags[i])

    @rule(i=st.integers(0, 1), ev=valid_events, flags=st.sampled_from(_FLAG_CHOICES))
    def register(self, i, ev, flags):
        fd = self.fd(i)
        if fd in self.model:
            try:
                self.sel.register(fd, ev, flags=flags)
            except KeyError:
                return
            raise AssertionError("duplicate register accepted")
        self.sel.register(fd, ev, "r", flags=flags)
        self.model[fd] = dict(events=ev, data="r", flags=flags, armed=True)

    @rule(
        i=st.integers(0, 1),
        ev=st.sampled_from([0, 1, 2, 3]),
        data_=data,
        flags=st.sampled_from([None, None, None] + _FLAG_CHOICES),
    )
    def modify(self, i, ev, data_, flags):
        fd = self.fd(i)
        if fd not in self.model:
            try:
                self.sel.modify(fd, ev, data_, flags=flags)
            except KeyError:
                return
            raise AssertionError("modify of an unknown fd accepted")
        key = self.sel.modify(fd, ev, data_, flags=flags)
        m = self.model[fd]
        if flags is not None or ev != m["events"]:  # EPOLL_CTL_MOD: re-armed
            m["armed"] = True
            if flags is not None:
                m["flags"] = flags
        if ev != m["events"] or data_ != m["data"]:
            m["events"], m["data"] = ev, data_
        assert (key.events, key.data) == (m["events"], m["data"])

    @rule(i=st.integers(0, 1), data_=data)
    def modify_data_only(self, i, data_):
        # Same events, flags=None: the stdlib's path, no syscall, so a fired
        # one-shot stays disarmed.
        m = self.model.get(self.fd(i))
        if m is not None:
            self.modify(i, m["events"], data_, None)

    @rule(i=st.integers(0, 1))
    def rearm(self, i):
        # Same events and data, the registration's own flags passed again.
        m = self.model.get(self.fd(i))
        if m is not None:
            self.modify(i, m["events"], m["data"], m["flags"])

    @rule(i=st.integers(0, 1))
    def unregister(self, i):
        fd = self.fd(i)
        if fd in self.model:
            assert self.sel.unregister(fd).fd == fd
            del self.model[fd]

    @rule(i=st.integers(0, 1))
    def send(self, i):
        self.pairs[i][1].send(b"x")
        self.pending[i] = True

    @rule(i=st.integers(0, 1))
    def drain(self, i):
        drain(self.pairs[i][0])
        self.pending[i] = False

    @rule()
    def select(self):
        expected = set()
        for i in range(2):
            fd = self.fd(i)
            m = self.model.get(fd)
            if m is None or not m["armed"]:
                continue
            ready = EVENT_WRITE | (EVENT_READ if self.pending[i] else 0)
            if ready & m["events"]:
                expected.add((fd, ready & m["events"]))
                if m["flags"] & reactor.EPOLLONESHOT:
                    m["armed"] = False
        got = self.sel.select(0)
        assert {(k.fd, mask) for k, mask in got} == expected

    @invariant()
    def kernel_agrees(self):
        kernel = kernel_interest(self.sel.fileno())
        expected = {}
        for fd, m in self.model.items():
            if m["armed"]:
                expected[fd] = _KERNEL_INTEREST[m["events"]] | m["flags"]
            else:  # a fired one-shot keeps only its private bits
                expected[fd] = m["flags"] & _PRIVATE
        assert kernel == expected
        assert {fd: (k.events, k.data) for fd, k in self.sel.get_map().items()} == {
            fd: (m["events"], m["data"]) for fd, m in self.model.items()
        }


EpollFlagsMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
TestEpollFlagsStateful = EpollFlagsMachine.TestCase
