"""Applies test_cpython_asyncio.py's lists of expected failures (a test
module's own hooks are not called by pytest)."""


def pytest_collection_modifyitems(items):
    for item in items:
        mark = getattr(getattr(item, "module", None), "mark_expected_failure", None)
        if mark is not None and getattr(item, "cls", None) is not None:
            mark(item)
