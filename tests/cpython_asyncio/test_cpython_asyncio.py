"""CPython's own test_asyncio, for the running Python, on asyncio's loop and
on reactor's.

Every selected class of ``test.test_asyncio`` (shipped with the interpreter)
is collected twice:

- ``Asyncio__<module>__<class>``: the class as CPython runs it on Linux, on
  asyncio's own loop (the reference);
- ``Reactor__<module>__<class>``: the same class with every loop from
  reactor: ``create_event_loop()``/``new_loop()`` return
  ``reactor.new_event_loop()``, and ``reactor.EventLoopPolicy()`` is the
  policy while the test runs, so ``asyncio.new_event_loop()``,
  ``asyncio.run()``, ``asyncio.Runner`` and ``IsolatedAsyncioTestCase`` make
  reactor's loop too.

Two kinds of class (``SUITES``):

- the loop-parametrized ones, where CPython makes one class per selector and
  the epoll one (asyncio's default loop on Linux) is the reference:
  test_events' ``EPollEventLoopTests`` (``UnixEventLoopTestsMixin`` with
  ``SubprocessTestsMixin``), test_sock_lowlevel's and test_sendfile's
  ``EPollEventLoopTests``, test_server's ``SelectorStartServerTests``,
  test_buffered_proto's ``BufferedProtocolSelectorTests`` and test_sslproto's
  start-TLS class ``SelectorStartTLSTests``;
- the modules that take their loop from the policy: every test class of
  test_streams, test_subprocess, test_ssl, test_runners, test_taskgroups and
  test_timeouts (and test_server's policy-based classes), as far as the running
  Python has them.

The modules reset the policy in ``tearDownModule()``; this file does it around
each test instead (``_LoopChoice.run``): the policy is set before the test's
setUp (``IsolatedAsyncioTestCase`` makes its loop before setUp) and put back
to asyncio's default afterwards, so neither order of tests nor a test's own
``set_event_loop_policy(None)`` at its end leaks into the next test.

The contract: a test that passes on asyncio's loop passes on reactor's.
``FAILS_ON_ASYNCIO`` (fails on asyncio's own loop here: both twins xfail) and
``DIVERGENCES`` (reactor's only, strict xfail) hold every exception, each
with a reason; both are empty unless said otherwise in them.

Run: ``pytest tests/cpython_asyncio -n 2`` (marker ``external``).
"""

import asyncio
import importlib
import sys
import unittest

import pytest

import reactor

PY = sys.version_info[:2]

# module -> (loop-parametrized reference classes, policy-based classes);
# "*" means every TestCase class the module defines.  Names that the running
# Python's module lacks are left out.
SUITES = {
    "test_events": (["EPollEventLoopTests"], []),
    "test_sock_lowlevel": (["EPollEventLoopTests"], []),
    "test_sendfile": (["EPollEventLoopTests"], []),
    "test_server": (
        ["SelectorStartServerTests"],
        ["TestServer2", "UnixServerCleanupTests"],
    ),  # 3.12+, 3.13+
    "test_buffered_proto": (["BufferedProtocolSelectorTests"], []),
    "test_sslproto": (["SelectorStartTLSTests"], []),
    "test_streams": ([], "*"),
    "test_subprocess": ([], "*"),
    "test_ssl": ([], "*"),  # 3.11+
    "test_runners": ([], "*"),
    "test_taskgroups": ([], "*"),  # 3.11+
    "test_timeouts": ([], "*"),  # 3.11+
}

# (Python versions or None for all, "module.Class.test") -> reason: fails on
# asyncio's own loop here; the Reactor twin is expected to fail the same way.
FAILS_ON_ASYNCIO = {}

# (Python versions or None for all, "module.Class.test") -> reason: fails on
# reactor's loop only.  Keep it empty.
DIVERGENCES = {}

pytestmark = [
    pytest.mark.external,
    # a loop that loses a wakeup makes a test wait for ever: fail it instead;
    # "thread" because test_events uses SIGALRM itself
    pytest.mark.timeout(120, method="thread"),
]


class _LoopChoice:
    """Mixed in before a test_asyncio class: which loop and policy it gets."""

    loop_name = None

    def _install_policy(self):
        raise NotImplementedError

    def run(self, result=None):
        self._install_policy()
        # the state CPython's runner leaves between tests: the policy's loop
        # was set, to None (test_utils.TestCase.tearDown does it); 3.12's
        # GenericWatcherTests.test_create_subprocess_with_pidfd expects
        # get_event_loop() to raise for it
        asyncio.set_event_loop(None)
        try:
            return super().run(result)
        finally:
            asyncio.set_event_loop_policy(None)


class _AsyncioLoop(_LoopChoice):
    loop_name = "Asyncio"

    def _install_policy(self):
        asyncio.set_event_loop_policy(None)


class _ReactorPolicy(_LoopChoice):
    loop_name = "Reactor"

    def _install_policy(self):
        asyncio.set_event_loop_policy(reactor.EventLoopPolicy())


class _ReactorLoop(_ReactorPolicy):
    """For the loop-parametrized classes: both hooks CPython's mixins use."""

    def create_event_loop(self):
        return reactor.new_event_loop()

    def new_loop(self):
        return reactor.new_event_loop()


def _import(module_name):
    try:
        return importlib.import_module(f"test.test_asyncio.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"test.test_asyncio.{module_name}":
            return None  # not in this Python (test_ssl etc. before 3.11)
        raise
    except unittest.SkipTest:
        return None


def _module_classes(module):
    for name, obj in vars(module).items():
        if (
            isinstance(obj, type)
            and issubclass(obj, unittest.TestCase)
            and obj.__module__ == module.__name__
            and unittest.defaultTestLoader.getTestCaseNames(obj)
        ):
            yield name, obj


def _twin(loop_choice, module_name, class_name, cls):
    name = f"{loop_choice.loop_name}__{module_name}__{class_name}"
    twin = type(cls)(
        name,
        (loop_choice, cls),
        {
            "__module__": __name__,
            "__qualname__": name,
            "cpython_test_class": f"{module_name}.{class_name}",
        },
    )
    return name, twin


def _build():
    twins = {}
    for module_name, (loop_classes, policy_classes) in SUITES.items():
        module = _import(module_name)
        if module is None:
            continue
        classes = dict(_module_classes(module))
        wanted = [(name, _ReactorLoop) for name in loop_classes]
        if policy_classes == "*":
            wanted += [(name, _ReactorPolicy) for name in classes]
        else:
            wanted += [(name, _ReactorPolicy) for name in policy_classes]
        for class_name, reactor_choice in wanted:
            cls = classes.get(class_name)
            if cls is None:
                continue
            for choice in (_AsyncioLoop, reactor_choice):
                name, twin = _twin(choice, module_name, class_name, cls)
                twins[name] = twin
    return twins


globals().update(_build())


def _lookup(table, key):
    for (versions, test), reason in table.items():
        if test == key and (versions is None or PY in versions):
            return reason
    return None


def mark_expected_failure(item):
    """Called for each collected item by this directory's conftest.py."""
    cls = item.cls
    key = f"{cls.cpython_test_class}.{item.name}"
    reason = _lookup(FAILS_ON_ASYNCIO, key)
    if reason:
        item.add_marker(
            pytest.mark.xfail(reason=f"fails on asyncio's loop too: {reason}", strict=False)
        )
    elif issubclass(cls, _ReactorPolicy):
        reason = _lookup(DIVERGENCES, key)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=f"reactor only: {reason}", strict=True))
