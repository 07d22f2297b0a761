"""cffi build script for reactor._native (API mode, compiled by setup.py).

`setup.py` names this file in `cffi_modules`; `python _native/build.py`
also builds the extension in place for development.

`cdef.h` is the one list of what Python may call.  The C sources, one per
concern, are compiled as one translation unit, in the order of SOURCES
(each may use what an earlier one defined).  The load client of
`python -m reactor models` (reactor/models/loadclient.c) is a second one:
a program whose main() the extension carries, so that running the models
needs no C compiler and nothing built or cached at run time.
"""

import contextlib
import os
import shutil
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Run as a script, the build happens in a scratch directory (below), where
# the one source file named by path must be named absolutely.
IN_PLACE = __name__ == "__main__"
SOURCES = ["helpers.c", "ring.c", "signals.c"]
LOADCLIENT = "reactor/models/loadclient.c"
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
    "\n".join(f'#line 1 "_native/{name}"\n{_read(name)}' for name in SOURCES)
    + "\nint reactor_loadclient_main(int argc, char **argv);  /* LOADCLIENT */\n",
    sources=[os.path.join(ROOT, LOADCLIENT) if IN_PLACE else LOADCLIENT],
    define_macros=[("REACTOR_EXTENSION", "1"), ("NO_TLS", "1")],  # for LOADCLIENT
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    + (["-g0"] if RELEASE else CFLAGS),
    extra_link_args=["-s"] if RELEASE else LDFLAGS,
    depends=DEPENDS,
)

if IN_PLACE:
    # In a scratch directory: cffi's compile step reads the configuration
    # of the directory it runs in, and the project's pyproject.toml needs a
    # newer setuptools than a venv may hold (license = "MIT").
    # REACTOR_BUILD_DIR names one to keep instead (CI's gcov build: the
    # .gcno notes and .gcda counts live beside the objects).
    keep = os.environ.get("REACTOR_BUILD_DIR")
    with (
        contextlib.nullcontext(keep)
        if keep
        else tempfile.TemporaryDirectory(prefix="reactor-build-")
    ) as scratch:
        built = ffibuilder.compile(tmpdir=scratch, verbose=True)
        shutil.copy(built, os.path.join(ROOT, "reactor"))
        print(f"copied {os.path.basename(built)} to {os.path.join(ROOT, 'reactor')}")
