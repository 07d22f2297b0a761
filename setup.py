# The cffi extension reactor._native is declared here; everything else is in
# pyproject.toml.  cffi's setuptools hook compiles _native/build.py.
from setuptools import setup

setup(cffi_modules=["_native/build.py:ffibuilder"])
