"""The C layer's thread protocol under ThreadSanitizer (README, "Reliability").

tests/tsan/harness.c includes _native/helpers.c and hammers, from real
threads, the spin lock, wait-state claims, epoll waits with registrations
and slot growth in other threads and close() while waits block, and poll
and select waits while their arrays change.  Built with -fsanitize=thread;
any data race TSan sees, or any check of the harness, fails the test.
.ci/run runs the same harness once more, longer.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
HARNESS = HERE / "tsan" / "harness.c"
# TSan's exit code on a report, and its options: stop at the first one.
TSAN_EXIT = 66
TSAN_OPTIONS = f"halt_on_error=1 exitcode={TSAN_EXIT} second_deadlock_stack=1"


def _env(**extra):
    # Without the ASan run's LD_PRELOAD (.ci/run): one sanitizer at a time.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(extra)
    return env


def build_harness(out):
    """Compile the harness with -fsanitize=thread into `out`: (status, the
    compiler's output)."""
    cmd = [
        "gcc",
        "-fsanitize=thread",
        "-O1",
        "-g",
        "-pthread",
        "-Wall",
        "-Wextra",
        "-Wno-unused-function",
        "-Wno-unused-parameter",
        str(HARNESS),
        "-o",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    return proc.returncode, proc.stdout + proc.stderr


def run_harness(binary, seconds):
    return subprocess.run(
        [str(binary), str(seconds)],
        capture_output=True,
        text=True,
        env=_env(TSAN_OPTIONS=TSAN_OPTIONS),
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler (gcc) on this machine")
def test_helpers_thread_protocol_under_threadsanitizer(tmp_path):
    rc, output = build_harness(tmp_path / "harness")
    assert rc == 0, f"the TSan harness did not build:\n{output}"
    proc = run_harness(tmp_path / "harness", 0.3)
    report = proc.stdout + proc.stderr
    assert "ThreadSanitizer" not in report, report
    assert proc.returncode == 0, report
    assert "all passed" in proc.stdout, report
