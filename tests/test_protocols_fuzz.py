"""Hypothesis drives random sequences of write / write_eof / pause_reading /
resume_reading / close on a server transport while its peer writes too, on
the Reactor over every selector and on asyncio's loop as the reference: no
byte is lost, duplicated or reordered, and connection_lost() comes once.

One loss is the kernel's, not the transport's: a socket closed while the
peer's bytes wait unread in it sends RST, and the peer's kernel drops what
it had not handed to the peer yet.  The test allows exactly that: when the
server closed with input unread, what the peer got must be a prefix."""

import asyncio
import socket
import sys

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from _loops import LOOP_KINDS, Recorder, make_driver

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 300_000)),
        st.tuples(st.just("peer_write"), st.integers(1, 100_000)),
        st.just(("write_eof",)),
        st.just(("pause",)),
        st.just(("resume",)),
        st.just(("turn",)),
        st.just(("close",)),
    ),
    max_size=25,
)


def chunk(n, seed):
    return bytes((seed + i) % 251 for i in range(251)) * (n // 251) + bytes(n % 251)


@pytest.mark.parametrize("kind", LOOP_KINDS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_lose_and_duplicate_nothing(kind, ops):
    drv = make_driver(kind)
    try:
        servers = []
        server = drv.server(lambda: servers.append(Recorder()) or servers[-1])
        client = drv.connect(Recorder, "127.0.0.1", drv.port_of(server))
        drv.run_until(
            lambda: (
                servers
                and servers[0].transport is not None
                and client.transport is not None
                and client.protocol.events
            )
        )
        transport = servers[0].transport
        sent = bytearray()  # what the server wrote and must arrive
        peer_sent = bytearray()  # what the client wrote
        eof = closed = False
        for index, op in enumerate(ops):
            name = op[0]
            if name == "write" and not closed:
                data = chunk(op[1], index)
                if eof:
                    with pytest.raises(RuntimeError):
                        transport.write(data)
                else:
                    transport.write(data)
                    sent += data
            elif name == "peer_write" and not client.transport.is_closing():
                data = chunk(op[1], 100 + index)
                client.transport.write(data)
                peer_sent += data
            elif name == "write_eof" and not closed:
                transport.write_eof()
                eof = True
            elif name == "pause":
                transport.pause_reading()
                assert not transport.is_reading()
            elif name == "resume":
                transport.resume_reading()
                # Closing: by close(), or after the peer's EOF (our write_eof
                # made the peer's Recorder close, and its FIN closed us).
                assert transport.is_reading() == (not transport.is_closing())
            elif name == "close":
                transport.close()
                closed = True
                assert transport.is_closing()
            else:
                drv.run_for(0.002)
        closed = transport.is_closing()
        if not closed:
            transport.resume_reading()
            drv.run_until(
                lambda: len(servers[0].received) == len(peer_sent),
                timeout=30,
                what="the server to read what the peer sent",
            )
            transport.close()
        drv.run_until(
            lambda: len(client.protocol.received) >= len(sent) or client.protocol.lost_count,
            timeout=30,
        )
        # The server's FIN; or its RST, when it closed with the peer's bytes
        # unread (the kernel's rule), which ends the client at once.
        drv.run_until(
            lambda: ("eof",) in client.protocol.events or client.protocol.lost_count, timeout=30
        )
        client.transport.close()
        drv.run_until(lambda: servers[0].lost_count and client.protocol.lost_count, timeout=30)
        drv.run_for(0.01)
        received = servers[0].received
        if len(received) < len(peer_sent):
            # The server closed with the peer's bytes unread: the kernel
            # answers with RST, and the peer may lose the tail of what we
            # sent (asyncio alike).  What arrived is still a clean prefix.
            assert client.protocol.received == bytes(sent[: len(client.protocol.received)])
        else:
            assert client.protocol.received == bytes(sent)
        assert received == bytes(peer_sent[: len(received)])  # a prefix: nothing lost inside
        if not closed:
            assert received == bytes(peer_sent)
        assert servers[0].lost_count == 1 and client.protocol.lost_count == 1
        assert drv.errors == []
        assert isinstance(servers[0].transport, asyncio.Transport)
    finally:
        drv.close()


# -- acting inside the callbacks ---------------------------------------------------
#
# The protocol itself closes, writes, pauses and resumes from inside its
# data_received(), eof_received(), pause_writing() and resume_writing(): the
# re-entrant paths (a close() from resume_writing() after the buffer
# drained ran the connection_lost() path twice).

ACTION = st.one_of(
    st.tuples(st.just("write"), st.sampled_from([1, 70_000, 300_000])),
    st.just(("close",)),
    st.just(("abort",)),
    st.just(("write_eof",)),
    st.just(("pause_reading",)),
    st.just(("resume_reading",)),
    st.just(("resume_later",)),
)
CALLBACKS = ("connection_made", "data_received", "eof_received", "pause_writing", "resume_writing")
SCRIPT = st.fixed_dictionaries(
    {name: st.lists(st.lists(ACTION, min_size=1, max_size=3), max_size=3) for name in CALLBACKS}
)


class Scripted(Recorder):
    """Runs script[callback][i] from inside the i-th call of `callback`."""

    def __init__(self, script, limits, keep_open, drv):
        super().__init__()
        self.script = script
        self.limits = limits
        self.eof_result = keep_open
        self.drv = drv
        self.calls = dict.fromkeys(CALLBACKS, 0)
        self.sent = bytearray()
        self.aborted = False

    def act(self, name):
        index = self.calls[name]
        self.calls[name] += 1
        actions = self.script[name][index] if index < len(self.script[name]) else []
        transport = self.transport
        for action in actions:
            kind = action[0]
            if kind == "write":
                if not transport.is_closing() and not self.eof_written:
                    data = chunk(action[1], len(self.sent))
                    self.sent += data  # first: write() may call pause_writing(), which writes
                    transport.write(data)
            elif kind == "close":
                transport.close()
            elif kind == "abort":
                self.aborted = True
                transport.abort()
            elif kind == "write_eof":
                if transport.can_write_eof():
                    transport.write_eof()
                    self.eof_written = True
            elif kind == "pause_reading":
                transport.pause_reading()
            elif kind == "resume_reading":
                transport.resume_reading()
            else:  # resume_later
                self.drv.call_soon(transport.resume_reading)

    eof_written = False

    def connection_made(self, transport):
        super().connection_made(transport)
        # A small kernel buffer, so that writes queue and flow control runs.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        if self.limits is not None:
            transport.set_write_buffer_limits(*self.limits)
        self.act("connection_made")

    def data_received(self, data):
        super().data_received(data)
        self.act("data_received")

    def eof_received(self):
        super().eof_received()
        self.act("eof_received")
        return self.eof_result

    def pause_writing(self):
        super().pause_writing()
        self.act("pause_writing")

    def resume_writing(self):
        super().resume_writing()
        self.act("resume_writing")


# The case that found the double connection_lost(): close() from
# resume_writing() once the buffer drained.
CLOSE_ON_RESUME = dict(
    {name: [] for name in CALLBACKS},
    connection_made=[[("write", 300_000)]],
    resume_writing=[[("close",)]],
)


@pytest.mark.parametrize("kind", LOOP_KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(script=CLOSE_ON_RESUME, limits=(1, 0), keep_open=False, peer_bytes=1, peer_eof=False)
@given(
    script=SCRIPT,
    limits=st.sampled_from([None, (1, 0), (4096, 0), (65536, 1024)]),
    keep_open=st.booleans(),
    peer_bytes=st.sampled_from([1, 5000, 200_000]),
    peer_eof=st.booleans(),
)
def test_actions_inside_callbacks_call_connection_lost_once(
    kind, script, limits, keep_open, peer_bytes, peer_eof
):
    if kind == "asyncio" and sys.version_info < (3, 13, 1):
        # asyncio up to 3.13.0 runs the connection_lost() path twice after a close()
        # from resume_writing() (fixed upstream): not that, on the reference.
        assume(
            not any(
                action[0] in ("close", "abort")
                for actions in script["resume_writing"]
                for action in actions
            )
        )
    drv = make_driver(kind)
    try:
        servers = []
        server = drv.server(
            lambda: servers.append(Scripted(script, limits, keep_open, drv)) or servers[-1]
        )
        client = drv.connect(Recorder, "127.0.0.1", drv.port_of(server))
        drv.run_until(lambda: servers and client.transport is not None and servers[0].events)
        peer = chunk(peer_bytes, 7)
        client.transport.write(peer)
        if peer_eof:
            client.transport.write_eof()
        drv.run_for(0.02)
        ours = servers[0]
        if not ours.transport.is_closing():
            ours.transport.resume_reading()
            ours.transport.close()
        drv.run_until(lambda: ours.lost_count, timeout=30, what="the server's connection_lost")
        if not client.transport.is_closing():
            drv.run_until(
                lambda: ("eof",) in client.protocol.events or client.protocol.lost_count,
                timeout=30,
            )
            client.transport.close()
        drv.run_until(lambda: client.protocol.lost_count, timeout=30)
        drv.run_for(0.01)
        errors = drv.errors
        if kind == "asyncio":
            # asyncio's own loop (seen on 3.13.0) reports ENOTCONN from its own
            # shutdown() when abort() follows write_eof() inside these callbacks: its
            # bug, on the reference; reactor's loops must report nothing.
            errors = [error for error in errors if not isinstance(error[0], OSError)]
        assert errors == []
        assert ours.lost_count == 1 and client.protocol.lost_count == 1
        assert [event[0] for event in ours.events].count("made") == 1
        assert ours.events[-1][0] == "lost"
        # Nothing reordered or duplicated: prefixes (an abort, or a close with
        # the peer's bytes unread, may cut the stream: the kernel's RST).
        assert client.protocol.received == bytes(ours.sent[: len(client.protocol.received)])
        assert ours.received == peer[: len(ours.received)]
    finally:
        drv.close()
