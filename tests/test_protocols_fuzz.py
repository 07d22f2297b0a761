"""Hypothesis drives random sequences of write / write_eof / pause_reading /
resume_reading / close on a server transport while its peer writes too, on
the Reactor over every selector and on asyncio's loop as the reference: no
byte is lost, duplicated or reordered, and connection_lost() comes once.

One loss is the kernel's, not the transport's: a socket closed while the
peer's bytes wait unread in it sends RST, and the peer's kernel drops what
it had not handed to the peer yet.  The test allows exactly that: when the
server closed with input unread, what the peer got must be a prefix."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _loops import LOOP_KINDS, Recorder, make_driver

OPS = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(1, 300_000)),
    st.tuples(st.just("peer_write"), st.integers(1, 100_000)),
    st.just(("write_eof",)),
    st.just(("pause",)),
    st.just(("resume",)),
    st.just(("turn",)),
    st.just(("close",)),
), max_size=25)


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
        drv.run_until(lambda: servers and servers[0].transport is not None
                      and client.transport is not None and client.protocol.events)
        transport = servers[0].transport
        sent = bytearray()        # what the server wrote and must arrive
        peer_sent = bytearray()   # what the client wrote
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
            drv.run_until(lambda: len(servers[0].received) == len(peer_sent), timeout=30,
                          what="the server to read what the peer sent")
            transport.close()
        drv.run_until(lambda: len(client.protocol.received) >= len(sent)
                      or client.protocol.lost_count, timeout=30)
        # The server's FIN; or its RST, when it closed with the peer's bytes
        # unread (the kernel's rule), which ends the client at once.
        drv.run_until(lambda: ("eof",) in client.protocol.events or client.protocol.lost_count,
                      timeout=30)
        client.transport.close()
        drv.run_until(lambda: servers[0].lost_count and client.protocol.lost_count, timeout=30)
        drv.run_for(0.01)
        received = servers[0].received
        if len(received) < len(peer_sent):
            # The server closed with the peer's bytes unread: the kernel
            # answers with RST, and the peer may lose the tail of what we
            # sent (asyncio alike).  What arrived is still a clean prefix.
            assert client.protocol.received == bytes(sent[:len(client.protocol.received)])
        else:
            assert client.protocol.received == bytes(sent)
        assert received == bytes(peer_sent[:len(received)])  # a prefix: nothing lost inside
        if not closed:
            assert received == bytes(peer_sent)
        assert servers[0].lost_count == 1 and client.protocol.lost_count == 1
        assert drv.errors == []
        assert isinstance(servers[0].transport, asyncio.Transport)
    finally:
        drv.close()
