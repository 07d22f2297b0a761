"""The load client: ``loadclient.c``, built with the package into
``reactor._native`` (a Python client would measure itself: at 1,000
connections it needs more CPU than the servers it loads).

It runs as a program of its own, in a child Python process that calls its
``main()`` once (``command()``): no C compiler at run time, nothing built,
cached or looked up by name in a directory another user could write.
Built without OpenSSL (``-DNO_TLS``): the IO models speak plain TCP; the
benchmarks' TLS case builds its own client from the same source.

    python -m reactor.models._loadclient HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S ...
"""

from __future__ import annotations

import os
import signal
import sys

import reactor


def command() -> list[str]:
    """The client's command line, to which its arguments are appended; it
    imports the reactor this process imported, wherever that lives."""
    where = os.path.dirname(os.path.dirname(os.path.abspath(reactor.__file__)))
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {where!r}); "
        "from reactor.models._loadclient import main; sys.exit(main(sys.argv[1:]))",
    ]


def main(args: list[str]) -> int:
    """Run the C client's main() with `args`, in this process, once."""
    from reactor._native import ffi, lib

    # The client is a C program: it expects the default dispositions, and
    # Python's SIGINT handler would only run once its main() returns.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    words = [ffi.new("char[]", os.fsencode(word)) for word in ["loadclient", *args]]
    argv = ffi.new("char *[]", [*words, ffi.NULL])
    return lib.reactor_loadclient_main(len(words), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
