"""Resources (README, "Reliability"): every fd reactor creates is
close-on-exec and released by close(); objects dropped without close()
release theirs when collected, with a ResourceWarning as the stdlib's
sockets and asyncio's loops give."""

import fcntl
import gc
import os
import signal
import socket
import warnings

import pytest

import reactor


def _fds():
    """The open fds, without the one os.listdir() used to list them."""
    return {int(fd) for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")}


def _open_fds():
    return len(_fds())


MAKERS = {
    "EpollSelector": reactor.EpollSelector,
    "PollSelector": reactor.PollSelector,
    "SelectSelector": reactor.SelectSelector,
    "Reactor": reactor.Reactor,
    "Reactor-poll": lambda: reactor.Reactor(reactor.PollSelector()),
}


@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
def test_create_and_close_10000_leaks_nothing(make):
    gc.collect()
    before = _open_fds()
    for _ in range(10_000):
        make().close()
    assert _open_fds() == before


@pytest.mark.parametrize(
    "make",
    [reactor.EpollSelector, reactor.Reactor, lambda: reactor.Reactor(reactor.PollSelector())],
    ids=["EpollSelector", "Reactor", "Reactor-poll"],
)
def test_unclosed_objects_release_their_fds_when_collected(make):
    gc.collect()
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(200):
            make()
        gc.collect()
    assert _open_fds() == before
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(unclosed) >= 200, [str(w.message) for w in caught[:3]]
    assert all("unclosed" in str(w.message) for w in unclosed)


def test_closed_objects_give_no_resource_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for make in MAKERS.values():
            make().close()
        with reactor.EpollSelector():
            pass
        with reactor.Reactor():
            pass
        gc.collect()
    assert not caught, [str(w.message) for w in caught]


def _cloexec(fd):
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def test_every_fd_reactor_creates_is_close_on_exec():
    before = _fds()
    with reactor.Reactor() as loop:
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        server = reactor.TCPServer(loop, on_data=lambda conn, data: conn.write(data))
        client = socket.create_connection(server.address)
        try:
            deadline = loop.time() + 5
            while not server.connections and loop.time() < deadline:
                loop.run_once(0.05)
            assert server.connections, "the connection was not accepted"
            ours = {
                fd: os.readlink(f"/proc/self/fd/{fd}")
                for fd in _fds() - before - {client.fileno()}
            }
            # epoll fd, eventfd, the signal socketpair, the listener and the
            # accepted connection.
            assert len(ours) == 6, ours
            inheritable = [name for fd, name in ours.items() if not _cloexec(fd)]
            assert not inheritable, inheritable
        finally:
            client.close()
            server.close()
            loop.remove_signal_handler(signal.SIGUSR1)


def _drop_with_signal_handler():
    loop = reactor.Reactor()
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    reader, writer = loop._signal_sockets
    return loop, writer.fileno(), reader.fileno()


def test_unclosed_reactor_with_signals_uninstalls_its_wakeup_fd():
    # [L6] Collected in the main thread: the wakeup fd is uninstalled and
    # the signal's disposition restored before its socket closes.
    previous = signal.getsignal(signal.SIGUSR2)
    loop, _, _ = _drop_with_signal_handler()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del loop
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert signal.set_wakeup_fd(-1) == -1  # nothing was left installed
    assert signal.getsignal(signal.SIGUSR2) == previous


def test_unclosed_reactor_collected_in_another_thread_keeps_the_fd_number():
    # [L6] Signal functions only work in the main thread: the socketpair is
    # left open, so the installed wakeup fd never points at a reused number.
    import threading

    previous = signal.getsignal(signal.SIGUSR2)
    holder = [_drop_with_signal_handler()]
    writer_fd, reader_fd = holder[0][1:]
    caught = []

    def drop():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ResourceWarning)
            holder.clear()
            gc.collect()
        caught.extend(seen)

    thread = threading.Thread(target=drop)
    thread.start()
    thread.join()
    try:
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert any("left its signal wakeup fd installed" in m for m in messages), messages
        assert os.path.exists(f"/proc/self/fd/{writer_fd}")
    finally:
        assert signal.set_wakeup_fd(-1) == writer_fd
        signal.signal(signal.SIGUSR2, previous)
        os.close(writer_fd)
        os.close(reader_fd)


# --------------------------------------------------------------------------
# Memory follows the registrations, not the fd numbers (issue 10)


def _wait_entries(sel):
    """Entries per wait in the main wait state of `sel`: epoll's maxevents
    and result arrays, select's result arrays, poll's pollfd copy."""
    state = sel._state
    if isinstance(sel, reactor.SelectSelector):
        # (Before issue 10, select's result arrays had as many entries as
        # its fd sets had bits: `capacity`.)
        return getattr(state, "ready_capacity", state.capacity)
    return state.capacity


@pytest.mark.parametrize(
    "cls", [reactor.EpollSelector, reactor.PollSelector, reactor.SelectSelector]
)
def test_one_high_fd_gives_buffers_for_one_registration(cls, high_nofile):
    # One fd numbered near the fd limit (19,999 here) gave EpollSelector
    # 20,000 slots (547 KiB of buffers and 82 KiB of stamps per wait
    # state, ~32 MiB at fs.nr_open), and SelectSelector result arrays for
    # 20,000 fds; only select's fd sets (bitmaps, 1 bit per number) must
    # reach the highest fd.
    a, b = socket.socketpair()
    high = os.dup2(a.fileno(), high_nofile - 1, inheritable=False)
    try:
        with cls() as sel:
            key = sel.register(high, reactor.EVENT_READ)
            b.send(b"x")
            assert sel.select(0) == [(key, reactor.EVENT_READ)]
            entries = _wait_entries(sel)
            assert entries <= 64, f"{entries} entries per wait for one registration"
            if cls is reactor.EpollSelector:
                assert sel._buffer_sizes()["slots"] <= 64
            if cls is reactor.SelectSelector:
                # reactor._select [SE4]: the bitmaps
                assert sel._buffer_sizes()["fd_bits"] >= high + 1
    finally:
        os.close(high)
        a.close()
        b.close()


@pytest.mark.parametrize(
    "cls", [reactor.EpollSelector, reactor.PollSelector, reactor.SelectSelector]
)
def test_buffers_grow_with_registrations_and_one_wait_returns_them_all(cls, high_nofile):
    # Amortised growth: at most twice the peak number of registrations, and
    # one wait still reports every ready fd [E7].
    pairs = [socket.socketpair() for _ in range(300)]
    try:
        with cls() as sel:
            for i, (a, b) in enumerate(pairs):
                sel.register(a, reactor.EVENT_READ, i)
                b.send(b"x")
                if i in (0, 7, 8, 100):
                    assert len(sel.select(0)) == i + 1
                    assert i + 1 <= _wait_entries(sel) <= 2 * (i + 1) + 64
            assert len(sel.select(0)) == 300
            assert 300 <= _wait_entries(sel) <= 2 * 300 + 64, sel._buffer_sizes()
            # Churn reuses what is there: no growth.
            before = sel._buffer_sizes()
            for _ in range(3):
                for a, _ in pairs[:150]:
                    sel.unregister(a)
                for a, _ in pairs[:150]:
                    sel.register(a, reactor.EVENT_READ)
            assert sel._buffer_sizes() == before
            assert len(sel.select(0)) == 300
    finally:
        for a, b in pairs:
            a.close()
            b.close()
