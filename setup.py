# The cffi extension reactor._native is declared here; everything else is in
# pyproject.toml.  cffi's setuptools hook compiles _native/build.py.
#
# The extension uses only the limited API (cffi builds it as
# _native.abi3.so), so one wheel serves CPython 3.10 and later: bdist_wheel
# tags it cp310-abi3 to match (without this it says cp311-cp311, the
# building interpreter, while holding an abi3 module).
from setuptools import setup

setup(
    cffi_modules=["_native/build.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
