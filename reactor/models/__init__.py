"""The chapter's five IO models, one small echo server each, to be read
beside the chapter and measured side by side (``python -m reactor models``).

==============================  ==========================================
the chapter                     here
==============================  ==========================================
1 blocking (阻塞 IO)            blocking.py: a thread per client, and the
                                one-client-at-a-time loop (--one-at-a-time)
2 non-blocking (非阻塞 IO)      nonblocking.py: ask every socket, again and
                                again (EWOULDBLOCK)
3 multiplexing (IO多路复用)     multiplexing.py: select, poll, epoll in the
                                chapter's selectors loop; --loop: the
                                Reactor with the chapter's TCPServer
4 signal-driven (信号驱动IO)    signaldriven.py: O_ASYNC + F_SETSIG real-time
                                signals read from a signalfd, SIGIO rescan
5 asynchronous (异步 IO)        asynchronous.py: io_uring completions
                                (reactor.Ring)
==============================  ==========================================

Every server: ``python -m reactor.models.<module> [--port PORT] [--chapter]``
(_serve.py: the shared command line, listening socket and stop).  The
measuring harness: driver.py (the echo driver: servers, the C load client
of loadclient.c built by _loadclient.py, CPU and memory from /proc; the
benchmark suite's end-to-end cases run on it too), cases.py (the models
as one case of it), _report.py (tables, JSON, plots), _cli.py.
"""
