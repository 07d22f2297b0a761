"""The habits CI keeps (docs/development.md, "Lint, types, coverage"):
`ruff check`, `ruff format --check` and `mypy` pass on the tree, each with
its configuration from pyproject.toml.  Each test skips, saying why, when
its tool is not installed (it is in the `test` extra) or when the sources
are not beside the tests (the wheel's test run copies only tests/)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.skipif(
    not (ROOT / "reactor").is_dir() or not (ROOT / "pyproject.toml").is_file(),
    reason="the package's sources and pyproject.toml are not beside the tests",
)


def _run(tool, *args, timeout=300):
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed: pip install -e '.[test]'")
    result = subprocess.run(
        [sys.executable, "-m", tool, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check():
    _run("ruff", "check", "--no-cache", ".")


def test_ruff_format():
    _run("ruff", "format", "--check", "--no-cache", ".")


def test_mypy(tmp_path):
    # files, python_version and overrides come from [tool.mypy]; the cache
    # goes to a scratch directory, not the checkout
    _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
