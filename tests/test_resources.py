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
    return {int(fd) for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


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


@pytest.mark.parametrize("make", [reactor.EpollSelector, reactor.Reactor,
                                  lambda: reactor.Reactor(reactor.PollSelector())],
                         ids=["EpollSelector", "Reactor", "Reactor-poll"])
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
            ours = {fd: os.readlink(f"/proc/self/fd/{fd}")
                    for fd in _fds() - before - {client.fileno()}}
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
