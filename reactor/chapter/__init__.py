"""The chapter's programs: what the IO-multiplexing chapter asks a reader to
build, on reactor's layers.

- _tcp: ``TCPServer(loop, host, port, on_data)``, the chapter's server API,
  over the Reactor's create_server();
- _echo: ``python -m reactor echo``, the chapter's exercise (replies
  ``Your msg = ... ~~~``) on the Reactor, with --workers, --tls and a
  graceful stop;
- _ring_echo: the same echo on io_uring completions (``--backend uring``);
- _demo: ``python -m reactor demo``, reactor's selectors beside the
  stdlib's on this machine;
- _common: what they share (the chapter's log format, the fd limit a server
  of many connections needs).

The five IO models, measured, are reactor.models.
"""
