"""uvloop 0.22.1's own tests, run on asyncio's loop and on reactor's.

uvloop writes every test class twice over one body: ``Test_UV_*`` on
uvloop's loop and ``Test_AIO_*`` (any ``AIOTestCase`` subclass) on asyncio's,
so that the reference loop checks the test itself.  Here each ``AIOTestCase``
subclass gets a third twin, the same name with ``AIO`` replaced by
``Reactor`` (``Test_AIO_TCP`` -> ``Test_Reactor_TCP``), whose loop and policy
come from ``reactor.new_event_loop()`` and ``reactor.EventLoopPolicy()``.  The
vendored modules are not edited: the twins are added to each module when
pytest imports it (``_WithReactorTwins``).

The contract, checked by running both: a test that passes on asyncio's loop
passes on reactor's.  ``FAILS_ON_ASYNCIO`` lists what fails on asyncio's
own loop here (both twins are xfail, with the reason); ``DIVERGENCES`` lists
tests expected to fail on reactor's loop only, each with its reason, and
should stay empty.

Not collected: the ``Test_UV_*`` classes and the other plain test classes
(``TestPolicy``): they check uvloop's own loop, not the test bodies, and
cost as much time again.
"""

import importlib.util
import os
import pathlib
import sys

import pytest

import reactor

_HERE = pathlib.Path(__file__).parent


def _load_vendored_testbase():
    """uvloop's test modules import ``uvloop._testbase``; make that name the
    copy vendored beside them (0.22.1's, pinned with the tests) rather than
    whatever the installed uvloop wheel ships."""
    import uvloop

    spec = importlib.util.spec_from_file_location(
        "uvloop._testbase", _HERE / "_testbase.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["uvloop._testbase"] = module
    spec.loader.exec_module(module)
    uvloop._testbase = module
    return module


_testbase = _load_vendored_testbase()


class ReactorLoop:
    """Mixed in before an ``AIOTestCase`` subclass: same expectations as
    asyncio's loop (``implementation`` stays ``'asyncio'``, and reactor's loop
    is a subclass of asyncio's), loops and policy from reactor."""

    # test_signals runs a program in a child process with this expression
    # as its loop
    NEW_LOOP = "__import__('reactor').new_event_loop()"

    def new_loop(self):
        return reactor.new_event_loop()

    def new_policy(self):
        return reactor.EventLoopPolicy()

    def is_asyncio_loop(self):
        # _testbase asks whether type(loop) lives in asyncio's package; the
        # answer that matches `implementation == 'asyncio'` is yes.
        return True


def reactor_twin_name(name):
    return name.replace("AIO", "Reactor", 1)


def _add_reactor_twins(module):
    for name, obj in list(vars(module).items()):
        if (isinstance(obj, type)
                and issubclass(obj, _testbase.AIOTestCase)
                and obj.__module__ == module.__name__
                and "AIO" in name):
            twin_name = reactor_twin_name(name)
            twin = type(obj)(twin_name, (ReactorLoop, obj),
                             {"__module__": module.__name__,
                              "__qualname__": twin_name,
                              "reactor_twin_of": name})
            setattr(module, twin_name, twin)


class _WithReactorTwins(pytest.Module):
    def _getobj(self):
        module = super()._getobj()
        _add_reactor_twins(module)
        return module


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.parent == _HERE and module_path.name.startswith("test_"):
        return _WithReactorTwins.from_parent(parent, path=module_path)
    return None


# A loop that loses a wakeup makes these tests wait for ever: fail it instead.
# "thread": CPython's test_events uses SIGALRM itself; the watchdog thread
# dumps every stack and ends the process (an xdist worker is replaced).
HANG_GUARD = pytest.mark.timeout(120, method="thread")

# Tests that need a network beyond loopback: skipped on every loop.
NEEDS_NETWORK = {
    "test_getaddrinfo_11": "resolves example.com through real DNS",
    "test_getaddrinfo_21": "resolves a name under example.com through real DNS",
    "test_getaddrinfo_22": "resolves a name under example.com through real DNS",
}

# Tests with a wall-clock bound that a shared 2-core machine misses now and
# then, on any loop; uvloop skips them on its own CI (TRAVIS_OS_NAME,
# GITHUB_WORKFLOW), and here they are skipped where CI is set.
TIMING_ON_CI = {
    "test_call_at": "needs a 50 ms timer to fire within 70 ms (took 81 ms once "
                    "under load, on Python 3.10, with asyncio's own loop under "
                    "reactor's selector)",
}

# Tests that need sys.stdout and sys.stderr to be fds 1 and 2, as under
# unittest's runner: run with pytest's capture suspended.
NEEDS_REAL_STDIO = {
    "test_process_streams_redirect":
        "dup2()s a file onto sys.stdout.fileno() for a child to write to fd 1; "
        "under pytest's capture sys.stdout is a temporary file, not fd 1",
}

# "Class.test" of the Test_AIO_* original -> why it fails on asyncio's own
# loop here; its Reactor twin is expected to fail the same way.
FAILS_ON_ASYNCIO = {
}

# "Class.test" of a Reactor twin -> why it fails on reactor's loop only.
DIVERGENCES = {
}


def _class_and_test(item):
    cls = getattr(item, "cls", None)
    return (cls.__name__ if cls else None), item.name


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        if pathlib.Path(item.fspath).parent != _HERE:
            keep.append(item)
            continue
        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, _testbase.AIOTestCase):
            drop.append(item)  # Test_UV_* and uvloop's own TestPolicy
            continue
        keep.append(item)
        item.add_marker(pytest.mark.external)
        item.add_marker(HANG_GUARD)
        cls_name, test = _class_and_test(item)
        if test in NEEDS_NETWORK:
            item.add_marker(pytest.mark.skip(reason=NEEDS_NETWORK[test]))
            continue
        if test in TIMING_ON_CI and os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=TIMING_ON_CI[test]))
            continue
        is_twin = issubclass(cls, ReactorLoop)
        original = cls.reactor_twin_of if is_twin else cls_name
        reason = FAILS_ON_ASYNCIO.get(f"{original}.{test}")
        if reason:
            item.add_marker(pytest.mark.xfail(
                reason=f"fails on asyncio's loop too: {reason}", strict=False))
        elif is_twin and f"{cls_name}.{test}" in DIVERGENCES:
            item.add_marker(pytest.mark.xfail(
                reason=f"reactor only: {DIVERGENCES[cls_name + '.' + test]}",
                strict=True))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    # trylast: inside the capture plugin's own wrapper, which resumes
    # capturing for the call phase
    if item.name not in NEEDS_REAL_STDIO or pathlib.Path(item.fspath).parent != _HERE:
        return (yield)
    capture = item.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        return (yield)
