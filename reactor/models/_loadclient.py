"""The load client: ``loadclient.c`` beside this module, compiled on first
use with the system's C compiler and cached by a hash of the source, the
flags and the compiler's version (a Python client would measure itself: at
1,000 connections it needs more CPU than the servers it loads).  The
benchmarks build their C helpers with ``build()`` too.

The cache is ``$XDG_CACHE_HOME/reactor`` (by default ``~/.cache/reactor``).
Built without OpenSSL (``-DNO_TLS``) unless asked for ``--tls`` (the
benchmarks' TLS case): the IO models speak plain TCP, and need no OpenSSL
headers.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from importlib import resources

FLAGS = ("-O2", "-Wall")
TLS = {False: ("-DNO_TLS",), True: ("-lssl", "-lcrypto")}  # after the source: libraries


class LoadClientError(RuntimeError):
    """The client cannot be built here (no compiler, or it failed)."""


def _compiler() -> list[str]:
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    for name in ("cc", "gcc"):
        found = shutil.which(name)
        if found:
            return [found]
    raise LoadClientError("no C compiler found (cc or gcc): the load client "
                          "reactor/models/loadclient.c is compiled on first use, as are the "
                          "benchmarks' C helpers; install gcc")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "reactor")


def path(tls: bool = False) -> str:
    """The compiled client (with OpenSSL: ``tls``), built now if the cache
    lacks it."""
    source = resources.files(__package__).joinpath("loadclient.c").read_bytes()
    return build("loadclient", source, TLS[tls])


def build(name: str, source: bytes, flags: tuple[str, ...] = ()) -> str:
    """`source` compiled with FLAGS (and `flags` after it: libraries), from
    the cache if it has it; the binary's path."""
    compiler = _compiler()
    try:
        version = subprocess.run([*compiler, "--version"], capture_output=True,
                                 text=True).stdout
    except OSError as exc:
        raise LoadClientError(f"cannot run the C compiler {compiler[0]}: {exc}") from None
    key = hashlib.sha256(source + repr((compiler, FLAGS, flags, version)).encode())
    binary = os.path.join(cache_dir(), f"{name}-{key.hexdigest()[:16]}")
    if os.path.exists(binary):
        return binary
    os.makedirs(cache_dir(), exist_ok=True)
    src = f"{binary}.{os.getpid()}.c"
    with open(src, "wb") as f:
        f.write(source)
    try:
        res = subprocess.run([*compiler, *FLAGS, "-o", f"{binary}.{os.getpid()}", src, *flags],
                             capture_output=True, text=True)
        if res.returncode:
            raise LoadClientError(f"compiling {name} failed:\n{res.stderr.strip()}")
        os.replace(f"{binary}.{os.getpid()}", binary)  # atomic: parallel runs may race
    finally:
        os.unlink(src)
    return binary
