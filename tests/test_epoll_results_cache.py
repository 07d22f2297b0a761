"""EpollSelector keeps (key, mask) results between waits ([E8] in
reactor/_epoll.py): every change of a key must show in the next select()."""

import socket

import reactor
from reactor import EVENT_READ, EVENT_WRITE


def _readable_pairs(count):
    pairs = [socket.socketpair() for _ in range(count)]
    for _, b in pairs:
        b.send(b"x")
    return pairs


def _close(pairs):
    for a, b in pairs:
        a.close()
        b.close()


def test_data_change_shows_in_next_select():
    pairs = _readable_pairs(3)
    try:
        with reactor.EpollSelector() as sel:
            for i, (a, _) in enumerate(pairs):
                sel.register(a, EVENT_READ, f"old{i}")
            assert sorted(k.data for k, _ in sel.select(0)) == ["old0", "old1", "old2"]
            sel.modify(pairs[1][0], EVENT_READ, "new1")
            result = sel.select(0)
            assert sorted(k.data for k, _ in result) == ["new1", "old0", "old2"]
            assert all(sel.get_key(k.fd) is k for k, _ in result)
    finally:
        _close(pairs)


def test_mask_change_shows_in_next_select():
    pairs = _readable_pairs(3)
    try:
        with reactor.EpollSelector() as sel:
            for a, _ in pairs:
                sel.register(a, EVENT_READ)
            assert {m for _, m in sel.select(0)} == {EVENT_READ}
            sel.modify(pairs[0][0], EVENT_READ | EVENT_WRITE)
            masks = {k.fd: m for k, m in sel.select(0)}
            assert masks[pairs[0][0].fileno()] == EVENT_READ | EVENT_WRITE
            assert masks[pairs[1][0].fileno()] == EVENT_READ
    finally:
        _close(pairs)


def test_reused_fd_reports_its_new_key():
    pairs = _readable_pairs(3)
    try:
        with reactor.EpollSelector() as sel:
            for a, _ in pairs:
                sel.register(a, EVENT_READ, "old")
            assert len(sel.select(0)) == 3
            old_a, old_b = pairs[2]
            fd = old_a.fileno()
            sel.unregister(old_a)
            old_a.close()
            old_b.close()
            new_a, new_b = socket.socketpair()
            pairs[2] = (new_a, new_b)
            if new_a.fileno() != fd:  # make the new socket take the old number
                socket.socket(fileno=__import__("os").dup2(new_a.fileno(), fd)).detach()
                new_a.close()
                new_a = socket.socket(fileno=fd)
                pairs[2] = (new_a, new_b)
            new_b.send(b"y")
            sel.register(new_a, EVENT_READ, "new")
            result = {k.fd: (k.data, k.fileobj) for k, _ in sel.select(0)}
            assert result[fd] == ("new", new_a)
            sel.unregister(new_a)
            assert fd not in {k.fd for k, _ in sel.select(0)}
    finally:
        _close(pairs)


def test_close_then_reuse_selector_state_is_fresh():
    pairs = _readable_pairs(2)
    try:
        sel = reactor.EpollSelector()
        for a, _ in pairs:
            sel.register(a, EVENT_READ, "first")
        assert len(sel.select(0)) == 2
        sel.close()
        with reactor.EpollSelector() as sel2:
            for a, _ in pairs:
                sel2.register(a, EVENT_READ, "second")
            assert {k.data for k, _ in sel2.select(0)} == {"second"}
    finally:
        _close(pairs)
