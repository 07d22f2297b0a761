"""Selectors used from two threads: one blocked in select(), the other
changing registrations or closing the selector (README, "Threads").

What is promised, for every backend:

- register/modify/unregister from another thread while select() blocks is
  safe: the C layer never reads or writes memory that another thread freed
  or moved, and the blocked select() reports only fds registered with the
  events it reports.  epoll sees a new registration at once (the blocked
  wait can return it); poll and select see it at their next wait.
- close() from another thread does not interrupt a select() in progress:
  that call returns when an event or its timeout comes, reporting nothing.
- Two threads in select() on one selector: epoll and select each get their
  own results (as the stdlib's); poll raises RuntimeError, as the stdlib's
  ("concurrent poll() invocation").
"""

import os
import selectors
import socket
import threading
import time

import pytest

import reactor

BACKENDS = {
    "epoll": reactor.EpollSelector,
    "poll": reactor.PollSelector,
    "select": reactor.SelectSelector,
}


@pytest.fixture(params=list(BACKENDS))
def sel(request):
    s = BACKENDS[request.param]()
    s.kind = request.param
    yield s
    s.close()


class Waiter(threading.Thread):
    """select(timeout) in a thread; the result (or exception) kept."""

    def __init__(self, selector, timeout):
        super().__init__(daemon=True)
        self.selector, self.timeout = selector, timeout
        self.result = self.error = None
        self.started_waiting = threading.Event()

    def run(self):
        self.started_waiting.set()
        try:
            self.result = self.selector.select(self.timeout)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_blocked(self):
        """Return once the thread is (very likely) inside the wait."""
        self.started_waiting.wait(5)
        time.sleep(0.05)

    def finish(self, timeout=5):
        self.join(timeout)
        assert not self.is_alive(), "select() did not return"
        if self.error is not None:
            raise self.error
        return [(key.fd, mask) for key, mask in self.result]


def test_unregister_while_blocked_never_reports_a_moved_entry(sel, make_socketpair):
    # poll's array is compacted by unregister (the last entry moves into
    # the hole): the blocked wait must not report the moved fd with the
    # readiness of the one that left.
    pairs = [make_socketpair() for _ in range(3)]
    for a, _ in pairs:
        sel.register(a, selectors.EVENT_READ)
    waiter = Waiter(sel, 5)
    waiter.start()
    waiter.wait_blocked()
    first, last = pairs[0][0], pairs[2][0]
    sel.unregister(first)
    pairs[0][1].send(b"x")  # the unregistered fd becomes readable
    if sel.kind == "epoll":
        pairs[1][1].send(b"y")  # epoll does not wake for the unregistered one
    ready = waiter.finish()
    assert (last.fileno(), selectors.EVENT_READ) not in ready, ready
    assert first.fileno() not in {fd for fd, _ in ready}, ready


@pytest.mark.parametrize("count", [100, 3000])
def test_register_many_while_blocked(sel, make_socketpair, high_nofile, count):
    # Growing the selector's arrays while another thread waits on them:
    # the wait still reports the readiness it was woken for.
    a, b = make_socketpair()
    sel.register(a, selectors.EVENT_READ)
    waiter = Waiter(sel, 5)
    waiter.start()
    waiter.wait_blocked()
    extra = []
    try:
        for _ in range(count // 2):
            x, y = socket.socketpair()
            extra += [x, y]
            sel.register(x, selectors.EVENT_READ)
        if count > 1500:  # and fd numbers well past the first arrays
            high = os.dup2(extra[-1].fileno(), 5000, inheritable=False)
            extra.append(socket.socket(fileno=high))
            sel.register(high, selectors.EVENT_READ)  # never ready
        b.send(b"x")
        assert waiter.finish() == [(a.fileno(), selectors.EVENT_READ)]
    finally:
        for s in extra:
            sel.unregister(s) if s.fileno() in sel.get_map() else None
            s.close()


def test_epoll_reports_an_fd_registered_while_blocked(make_socketpair):
    with reactor.EpollSelector() as sel:
        a, b = make_socketpair()
        waiter = Waiter(sel, 5)
        waiter.start()
        waiter.wait_blocked()
        sel.register(a, selectors.EVENT_READ)
        b.send(b"x")
        assert waiter.finish() == [(a.fileno(), selectors.EVENT_READ)]


@pytest.mark.parametrize("kind", ["poll", "select"])
def test_poll_and_select_see_a_new_registration_at_the_next_wait(kind, make_socketpair):
    with BACKENDS[kind]() as sel:
        a, b = make_socketpair()
        b.send(b"x")
        waiter = Waiter(sel, 0.3)
        waiter.start()
        waiter.wait_blocked()
        sel.register(a, selectors.EVENT_READ)
        assert waiter.finish() == []  # the wait in progress does not see it
        assert [(k.fd, m) for k, m in sel.select(0)] == [(a.fileno(), selectors.EVENT_READ)]


def test_modify_while_blocked(sel, make_socketpair):
    a, b = make_socketpair()
    sel.register(a, selectors.EVENT_WRITE)
    sel.register(b, selectors.EVENT_READ)
    waiter = Waiter(sel, 0.3)
    # a is writable at once: make it not interesting first.
    sel.modify(a, selectors.EVENT_READ)
    waiter.start()
    waiter.wait_blocked()
    sel.modify(b, selectors.EVENT_READ, data="new")
    a.send(b"x")
    ready = waiter.finish()
    assert ready == [(b.fileno(), selectors.EVENT_READ)]
    assert sel.get_key(b).data == "new"


@pytest.mark.parametrize("timeout", [0.3, None])
def test_close_while_another_thread_selects(sel, make_socketpair, timeout):
    a, b = make_socketpair()
    sel.register(a, selectors.EVENT_READ)
    waiter = Waiter(sel, timeout)
    waiter.start()
    waiter.wait_blocked()
    sel.close()
    assert sel.get_map() is None
    if timeout is None:
        b.send(b"x")  # the wait in progress ends on an event
    start = time.monotonic()
    assert waiter.finish() == []  # nothing reported after close()
    if timeout is not None:
        assert time.monotonic() - start < 1


def test_concurrent_select_calls(sel, make_socketpair):
    a, b = make_socketpair()
    c, d = make_socketpair()
    sel.register(a, selectors.EVENT_READ)
    sel.register(c, selectors.EVENT_READ)
    first = Waiter(sel, 3)
    first.start()
    first.wait_blocked()
    if sel.kind == "poll":
        with pytest.raises(RuntimeError, match="concurrent poll"):
            sel.select(0)
        b.send(b"x")
        assert first.finish() == [(a.fileno(), selectors.EVENT_READ)]
        return
    b.send(b"x")
    second = sel.select(3)
    assert [(k.fd, m) for k, m in second] == [(a.fileno(), selectors.EVENT_READ)]
    assert first.finish() == [(a.fileno(), selectors.EVENT_READ)]


@pytest.mark.parametrize("ready", [0, 1, 2])
def test_selects_from_different_threads_one_after_another(sel, make_socketpair, ready):
    # A wait state is released once a select() has returned, whatever it
    # found: the next select(), from any thread, uses it (poll would refuse
    # a state still held).
    pairs = [make_socketpair() for _ in range(2)]
    for a, b in pairs:
        sel.register(a, selectors.EVENT_READ)
    for _, b in pairs[:ready]:
        b.send(b"x")
    expected = sorted((a.fileno(), selectors.EVENT_READ) for a, _ in pairs[:ready])
    for _ in range(3):
        waiter = Waiter(sel, 0)
        waiter.start()
        assert sorted(waiter.finish()) == expected
        assert sorted((k.fd, m) for k, m in sel.select(0)) == expected


def test_stdlib_poll_refuses_concurrent_select(make_socketpair):
    # The premise of the poll case above.
    a, b = make_socketpair()
    with selectors.PollSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        waiter = Waiter(sel, 3)
        waiter.start()
        waiter.wait_blocked()
        with pytest.raises(RuntimeError, match="concurrent poll"):
            sel.select(0)
        b.send(b"x")
        waiter.finish()


def test_register_unregister_storm_while_selecting(sel, make_socketpair):
    # One thread churns registrations while another selects in a loop:
    # every report is for an fd registered for what it reports.
    pairs = [make_socketpair() for _ in range(40)]
    for _, b in pairs:
        b.send(b"x")  # every a is readable
    stop = threading.Event()
    bad = []

    def selecting():
        while not stop.is_set():
            for key, mask in sel.select(0.001):
                if mask != selectors.EVENT_READ or key.fileobj not in [a for a, _ in pairs]:
                    bad.append((key, mask))

    thread = threading.Thread(target=selecting)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for a, _ in pairs:
                sel.register(a, selectors.EVENT_READ)
            for a, _ in pairs:
                sel.unregister(a)
    finally:
        stop.set()
        thread.join(5)
    assert not bad


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_while_another_thread_selects(sel, make_socketpair):
    # The waiting thread does not come into the child: the child's
    # select() must not find the selector's wait state taken (poll would
    # refuse) nor its lock held.
    a, b = make_socketpair()
    sel.register(a, selectors.EVENT_READ)
    waiter = Waiter(sel, 5)
    waiter.start()
    waiter.wait_blocked()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            b.send(b"x")
            ok = [(k.fd, m) for k, m in sel.select(1)] == [(a.fileno(), selectors.EVENT_READ)]
            sel.register(b, selectors.EVENT_WRITE)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert waiter.finish() == [(a.fileno(), selectors.EVENT_READ)]  # the child's byte


# --------------------------------------------------------------------------
# Regressions (issue 10)


def wait_claimed(sel):
    """Return once another thread's select() holds the main wait state."""
    deadline = time.monotonic() + 5
    while sel._state.owner == 0:
        assert time.monotonic() < deadline, "the other select() did not start"
        time.sleep(0.001)


def test_close_while_another_thread_selects_keeps_the_epoll_fd_until_the_wait_ends(
    make_socketpair,
):
    # close() closed the epoll fd while another thread was about to wait on
    # its number, which a new file could take at once: that wait then
    # blocked on whatever file it was.  The number stays taken until no
    # wait uses it; the last wait closes it as it returns.
    a, b = make_socketpair()
    sel = reactor.EpollSelector()
    sel.register(a, selectors.EVENT_READ)
    epfd = sel.fileno()
    waiter = Waiter(sel, None)
    waiter.start()
    waiter.wait_blocked()
    sel.close()
    try:
        assert os.readlink(f"/proc/self/fd/{epfd}") == "anon_inode:[eventpoll]"
        with selectors.EpollSelector() as other:
            assert other.fileno() != epfd  # the number was not free
    finally:
        b.send(b"x")  # ends the wait
        assert waiter.finish() == []  # nothing reported after close()
    assert not os.path.exists(f"/proc/self/fd/{epfd}")
    with pytest.raises(ValueError):
        sel.select(0)


def test_close_with_no_wait_in_progress_closes_the_epoll_fd_at_once():
    sel = reactor.EpollSelector()
    epfd = sel.fileno()
    sel.close()
    assert not os.path.exists(f"/proc/self/fd/{epfd}")
    sel.close()  # twice: nothing more to close


def test_poll_entry_missing_from_its_pollfd_array_raises_instead_of_being_ignored(make_socketpair):
    # reactor_poll_set_events() and reactor_poll_remove() answer -ENOENT
    # when fd is not where _fd_to_index says, which only registrations
    # changed from two threads at once can do; modify() ignored it (the
    # kernel went on polling the old mask, the key said the new one).
    a, _ = make_socketpair()
    c, _ = make_socketpair()
    with reactor.PollSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        sel.register(c, selectors.EVENT_READ)
        right = sel._fd_to_index[a.fileno()]
        sel._fd_to_index[a.fileno()] = sel._fd_to_index[c.fileno()]
        with pytest.raises(RuntimeError, match="pollfd array"):
            sel.modify(a, selectors.EVENT_READ | selectors.EVENT_WRITE)
        with pytest.raises(RuntimeError, match="pollfd array"):
            sel.unregister(a)
        sel._fd_to_index[a.fileno()] = right


@pytest.mark.parametrize("kind", ["epoll", "select"])
def test_selects_beside_a_blocked_one_reuse_their_buffers(kind, make_socketpair):
    # A select() that finds the main wait state taken by another thread
    # made new buffers every time (README: "no allocation per wait"); it
    # now takes a spare state, kept for the next one.
    a, b = make_socketpair()
    with BACKENDS[kind]() as sel:
        sel.register(a, selectors.EVENT_READ)
        made = []
        new_wait = sel._new_wait
        sel._new_wait = lambda: made.append(1) or new_wait()
        try:
            waiter = Waiter(sel, 5)
            waiter.start()
            wait_claimed(sel)
            results = [sel.select(0) for _ in range(20)]
            b.send(b"y")
            assert waiter.finish() == [(a.fileno(), selectors.EVENT_READ)]
        finally:
            del sel._new_wait
    assert results == [[]] * 20
    assert made == [1], "each select() beside the blocked one made new buffers"
