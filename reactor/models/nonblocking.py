"""Model 2, non-blocking IO (the chapter's 非阻塞 IO).

Every socket is non-blocking: a recv() with no data waiting returns at once
with EWOULDBLOCK (EAGAIN; Python raises BlockingIOError) instead of
sleeping, so one thread can serve every client by asking each in turn, again
and again.  The first stage (is there data?) no longer waits; the second
(copying it into our buffer) still happens inside recv().

The price is the asking: the loop never sleeps, so it burns a whole core
even when no client sends anything, and each round asks every socket, so a
message waits for a full round of recv() calls on all the idle ones.

Run: ``python -m reactor.models.nonblocking --port 0``.
"""

from . import _serve


def serve(args):
    with _serve.listen(args) as listener:
        listener.setblocking(False)
        unsent = {}  # client socket -> the bytes the kernel has not taken yet
        try:
            while True:  # never waits: every socket is asked again and again
                try:
                    while True:
                        conn, address = listener.accept()
                        conn.setblocking(False)
                        unsent[conn] = b""
                except BlockingIOError:  # EWOULDBLOCK: nobody is connecting
                    pass
                for conn, owed in list(unsent.items()):
                    if owed:  # the last reply is not all sent: finish it first
                        left = _serve.send_some(conn, owed)
                    else:
                        try:
                            data = conn.recv(_serve.RECV_SIZE)
                        except BlockingIOError:  # EWOULDBLOCK: nothing yet, ask next round
                            continue
                        except _serve.PEER_GONE:
                            data = b""
                        left = _serve.send_some(conn, args.reply(data)) if data else None
                    if left is None:  # the client left
                        del unsent[conn]
                        conn.close()
                    else:
                        unsent[conn] = left
        finally:
            for conn in unsent:
                conn.close()


if __name__ == "__main__":
    raise SystemExit(_serve.main(serve, __doc__))
