"""Every ```python block of README.md runs as written.

Each block is a program of its own, run in a fresh interpreter in an empty
scratch directory, in a namespace of its own (nothing is imported for it).
Two markers, an HTML comment on the line before a block, change that:

    <!-- readme-test: continues the block above -->
        the block runs in the same interpreter and namespace, after the one
        before it (the README's prose reads on from it);
    <!-- readme-test: not run: REASON -->
        the block is not run; the reason is required and shows in the test
        report as the skip reason.

A block that serves (``loop.run()`` until ``loop.stop()``) is stopped by a
timer: here every ``Reactor.run()`` returns after SERVE_SECONDS at most,
and the next block of the same program goes on.  New blocks are picked up
by themselves.
"""

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
SERVE_SECONDS = 0.5
MARKER = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")

# Run before the blocks, in its own namespace: the timer that stops servers.
PRELUDE = f"""
import reactor as _reactor
_run = _reactor.Reactor.run
def _run_until_stopped_or_timed_out(self):
    timer = self.call_later({SERVE_SECONDS}, self.stop)
    try:
        return _run(self)
    finally:
        timer.cancel()
_reactor.Reactor.run = _run_until_stopped_or_timed_out
"""


def _programs():
    """[(first line, [(line, source), ...], skip reason or None)] in README order."""
    with open(README, encoding="utf-8") as f:
        lines = f.read().splitlines()
    programs, marker, index = [], None, 0
    while index < len(lines):
        line = lines[index]
        found = MARKER.fullmatch(line.strip())
        if found:
            marker = found.group(1)
        elif line.strip() == "```python":
            start = index + 1
            end = lines.index("```", start)
            block = (start + 1, "\n".join(lines[start:end]) + "\n")
            if marker and marker.startswith("not run:"):
                reason = marker[len("not run:") :].strip()
                assert reason, f"README.md line {start}: 'not run:' needs a reason"
                programs.append((start + 1, [block], reason))
            elif marker == "continues the block above":
                assert programs, f"README.md line {start}: nothing above to continue"
                programs[-1][1].append(block)
            else:
                assert marker is None, f"README.md line {start}: unknown marker {marker!r}"
                programs.append((start + 1, [block], None))
            marker, index = None, end
        elif line.strip():
            marker = None  # a marker belongs to the block right after it
        index += 1
    return programs


PROGRAMS = _programs()


def test_the_readme_has_python_blocks():
    assert len(PROGRAMS) >= 5


@pytest.mark.parametrize(
    "first, blocks, skip", PROGRAMS, ids=[f"line-{first}" for first, _, _ in PROGRAMS]
)
def test_readme_block_runs_as_written(tmp_path, first, blocks, skip):
    if skip:
        pytest.skip(skip)
    script = (
        PRELUDE
        + "namespace = {'__name__': '__main__'}\n"
        + "".join(
            f"exec(compile({source!r}, 'README.md, block at line {line}', 'exec'), namespace)\n"
            for line, source in blocks
        )
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"README.md block at line {first}:\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
