"""The commands a user runs first, as real subprocesses from the repository
root: ``python -m reactor demo`` here, the benchmark suite's smoke pass in
test_benchmarks_suite.py (which uses ``run`` from here)."""

import os
import pathlib
import re
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(args, timeout, env=None):
    """Run ``python ARGS`` from the repository root in its own process group
    (with ``env`` added to the environment); fail if it times out or leaves
    processes behind (both are killed)."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        raise AssertionError(f"{args} did not finish in {timeout} s:\n{out}\n{err}")
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()
    assert not _kill_group(proc.pid), f"{args} left processes running (killed now)"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill_group(pgid):
    """SIGKILL every process left in the group; True if there was any."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def test_demo_output_shows_what_it_claims():
    proc = run(["-m", "reactor", "demo"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    line = r"^   (\w+Selector) +stdlib +([\d.]+) (us|ms) +reactor +([\d.]+) (us|ms)$"
    rows = re.findall(line, out, re.MULTILINE)
    names = ["EpollSelector", "PollSelector", "SelectSelector"]
    assert [row[0] for row in rows] == names * 2, out  # sections 1 and 2, in order
    ping_pong = {name: (float(std), float(ours)) for name, std, _, ours, _ in rows[:3]}
    waits = {name: (float(std), float(ours)) for name, std, _, ours, _ in rows[3:]}
    assert all(0 < t < 1000 for pair in ping_pong.values() for t in pair), out  # us per trip
    # select(0.0002): nobody returns early; the stdlib's epoll and poll
    # round the timeout up to whole milliseconds (what section 2 shows).
    assert all(t >= 0.2 for pair in waits.values() for t in pair), out
    assert waits["EpollSelector"][0] >= 1.0 and waits["PollSelector"][0] >= 1.0, out
    # fd 1050 is reported readable by reactor's SelectSelector; the stdlib's
    # refuses it (unless the fd limit does not allow the section at all).
    section3 = out[out.index("3. ") :]
    if "skipped: RLIMIT_NOFILE" not in section3:
        assert "reactor: [(1050, 1)]; stdlib: ValueError" in section3, out


def test_demo_compare_warms_up_alternates_and_takes_medians():
    import selectors

    import reactor
    from reactor.chapter import _demo

    calls = []
    values = {
        selectors.PollSelector: iter([99, 5, 1, 3, 2, 4]),
        reactor.PollSelector: iter([99, 10, 30, 20, 50, 40]),
    }

    def measure(cls):
        calls.append("stdlib" if cls is selectors.PollSelector else "reactor")
        return next(values[cls])

    assert _demo.compare(measure, "PollSelector", rounds=5) == (3, 30)
    assert calls[:2] == ["stdlib", "reactor"]  # the warm-up, not counted
    rounds = [calls[i : i + 2] for i in range(2, len(calls), 2)]
    assert rounds == [["stdlib", "reactor"], ["reactor", "stdlib"]] * 2 + [["stdlib", "reactor"]]
