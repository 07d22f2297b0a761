"""cffi build script for reactor._native (API mode, compiled by setup.py).

`setup.py` names this file in `cffi_modules`; `python _native/build.py`
also builds the extension in place for development.

`cdef.h` is the one list of what Python may call.  The C sources, one per
concern, are compiled as one translation unit, in the order of SOURCES
(each may use what an earlier one defined).
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["helpers.c", "ring.c", "signals.c"]


def _read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef(_read("cdef.h"))
ffibuilder.set_source(
    "reactor._native",
    "\n".join(f'#line 1 "_native/{name}"\n{_read(name)}' for name in SOURCES),
    # REACTOR_CFLAGS lets CI build a sanitizer variant
    # (e.g. "-fsanitize=address,undefined -fno-omit-frame-pointer").
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    + os.environ.get("REACTOR_CFLAGS", "").split(),
    extra_link_args=os.environ.get("REACTOR_LDFLAGS", "").split(),
    depends=[os.path.join(HERE, name) for name in ["cdef.h", *SOURCES]],
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    ffibuilder.compile(verbose=True)
