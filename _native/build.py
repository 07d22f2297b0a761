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
# setuptools runs this from the project root and accepts only relative
# paths there (an absolute `depends` entry is dropped from the sdist and
# then named as missing when the sdist is built).
DEPENDS = [f"_native/{name}" for name in ["cdef.h", *SOURCES]]
# REACTOR_CFLAGS / REACTOR_LDFLAGS let CI build a sanitizer variant
# (e.g. "-fsanitize=address,undefined -fno-omit-frame-pointer"), which keeps
# its symbols and debug info; a release build carries neither (-g0 overrides
# the -g in Python's own CFLAGS, -s strips the symbol table).
CFLAGS = os.environ.get("REACTOR_CFLAGS", "").split()
LDFLAGS = os.environ.get("REACTOR_LDFLAGS", "").split()
RELEASE = not (CFLAGS or LDFLAGS)


def _read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef(_read("cdef.h"))
ffibuilder.set_source(
    "reactor._native",
    "\n".join(f'#line 1 "_native/{name}"\n{_read(name)}' for name in SOURCES),
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    + (["-g0"] if RELEASE else CFLAGS),
    extra_link_args=["-s"] if RELEASE else LDFLAGS,
    depends=DEPENDS,
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    ffibuilder.compile(verbose=True)
