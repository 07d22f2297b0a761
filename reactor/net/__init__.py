"""The network layer: asyncio's transports and protocols over sockets, for
both of reactor's loops (the callback Reactor, reactor._loop, and the asyncio
EventLoop, reactor._eventloop).

- _transports: what every socket transport shares ([X1]-[X7]);
- _streams: TCP and Unix stream transports; _datagram: UDP and Unix
  datagrams;
- _connect, _servers: the Reactor's create_connection() and create_server()
  (the EventLoop keeps asyncio's own, which make these transports through
  its _make_*_transport() hooks);
- _tls: TLS over a stream transport for the Reactor (the EventLoop runs
  asyncio's sslproto over the same stream transport);
- _addresses: argument checks and address resolution shared by the above.

The layer imports only reactor._events below it.  What it asks of the loop
that owns its transports, and nothing more:

- ``call_soon(callback, *args)`` (with ``context=`` on the EventLoop),
  ``call_later()``, ``is_closed()``, ``create_future()`` (sendfile);
- ``register(fd, events, callback)`` / ``unregister(fd)``: readiness of
  sockets that are not transports yet (a connect in progress, a listener);
- ``_poller``: the readiness interface of transports (reactor._poller:
  ``set_interest()``, ``set_autoread()``, ``can_read_for()``), and the
  sink it calls back on a transport (``_fast_receive``, ``_received()``,
  ``_read_result()``, ``_on_ready()``);
- ``_report_error(exc, where, transport)``: how an error in a transport is
  reported (the Reactor's handle_exception(), the EventLoop's
  call_exception_handler());
- ``_transports``: fd -> transport, the loop's record of its transports;
- ``_check_open()`` and ``_run_in_thread(func, args, on_done)`` (the
  Reactor's, for its setup calls).
"""
