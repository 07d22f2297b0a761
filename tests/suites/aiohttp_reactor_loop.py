"""pytest plugin: aiohttp's own test suite on reactor's loop.

aiohttp's pytest plugin makes the ``loop`` fixture's loop with
``asyncio.new_event_loop`` (``--aiohttp-loop=pyloop``, its default), which
asks the policy; this plugin makes ``reactor.EventLoopPolicy()`` the policy
before every test, and fails a test whose ``loop`` fixture is not a loop of
the kind ``reactor.new_event_loop()`` makes.  Loaded by run_aiohttp.sh with
``-p aiohttp_reactor_loop`` for the reactor run only.
"""

import asyncio

import pytest

import reactor


def _kind(loop):
    return type(loop), type(getattr(loop, "_selector", None))


_probe = reactor.new_event_loop()
REACTOR_LOOP_KIND = _kind(_probe)
_probe.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    asyncio.set_event_loop_policy(reactor.EventLoopPolicy())


@pytest.fixture(autouse=True)
def _on_reactor_loop(request):
    if "loop" in request.fixturenames:
        loop = request.getfixturevalue("loop")
        assert _kind(loop) == REACTOR_LOOP_KIND, (
            f"the loop fixture is {_kind(loop)}, not reactor's {REACTOR_LOOP_KIND}"
        )
    yield
