"""io_uring for reactor: operations as callbacks on a loop, and files for asyncio.

What lives where (each module's docstring states its contract; the kernel
facts [U1]...[U17] the code points to are in docs/io_uring.md):

- ``_probe``: whether this kernel gives io_uring (``uring_available``) and why not;
- ``_ops``: ``Operation``, ``StatxResult``, the argument checks, and the
  operations a Ring offers (``read``, ``send``, ``timeout`` ...);
- ``_drivers``: how a Ring lives on a reactor.Reactor or on any asyncio loop;
- ``_ring``: ``Ring``, its one submit-and-reap path, cancelling, closing, fork;
- ``_bufring``: ``BufferRing``, buffers the kernel picks for recv;
- ``_files``: ``open_file``, ``read_bytes``, ``write_bytes`` (and the facts
  [F1]...[F7] about files), over ``_asyncfile`` (the file object, whatever
  the backend) and the two backends, ``_uring_files`` and ``_thread_files``
  (a thread pool, where io_uring is refused).

``import reactor`` does not import this package; ``reactor.Ring`` and the
other names below do, on first use.
"""

# Public name -> the module that defines it, imported on first use, so
# that reactor.Ring does not load the files (and asyncio) with it.
_LAZY = {
    "Ring": "_ring",
    "Operation": "_ops",
    "StatxResult": "_ops",
    "CLOSE_TIMEOUT": "_ring",
    "BufferRing": "_bufring",
    "uring_available": "_probe",
    "UringAvailability": "_probe",
    "open_file": "_files",
    "read_bytes": "_files",
    "write_bytes": "_files",
    "AsyncFile": "_files",
}

__all__ = list(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
