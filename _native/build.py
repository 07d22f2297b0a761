"""cffi build script for reactor._native (API mode, compiled by setup.py).

`setup.py` names this file in `cffi_modules`; `python _native/build.py`
also builds the extension in place for development.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef(_read("cdef.h"))
ffibuilder.set_source(
    "reactor._native",
    _read("helpers.c"),
    # REACTOR_CFLAGS lets CI build a sanitizer variant
    # (e.g. "-fsanitize=address,undefined -fno-omit-frame-pointer").
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    + os.environ.get("REACTOR_CFLAGS", "").split(),
    extra_link_args=os.environ.get("REACTOR_LDFLAGS", "").split(),
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    ffibuilder.compile(verbose=True)
