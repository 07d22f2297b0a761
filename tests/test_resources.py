"""Objects dropped without close() release their file descriptors."""

import gc
import os

import pytest

import reactor


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("make", [reactor.EpollSelector, reactor.Reactor,
                                  lambda: reactor.Reactor(reactor.PollSelector())],
                         ids=["EpollSelector", "Reactor", "Reactor-poll"])
def test_unclosed_objects_release_their_fds_when_collected(make):
    gc.collect()
    before = _open_fds()
    for _ in range(200):
        make()
    gc.collect()
    assert _open_fds() == before
