"""The commands a user runs first: ``python -m reactor demo`` and the quick
benchmark run, as real subprocesses from the repository root."""

import json
import os
import pathlib
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(args, timeout, env=None):
    """Run ``python ARGS`` from the repository root in its own process group
    (with ``env`` added to the environment); fail if it times out or leaves
    processes behind (both are killed)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})
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


def test_demo_runs_with_its_three_sections():
    proc = run(["-m", "reactor", "demo"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "1. Ping-pong over a socketpair" in out
    assert "2. select(0.0002) with nothing ready" in out
    assert "3. SelectSelector watching fd 1050" in out
    for name in ("EpollSelector", "PollSelector", "SelectSelector"):
        assert out.count(name) >= 2, out  # in sections 1 and 2
    assert out.index("1. ") < out.index("2. ") < out.index("3. ")
    assert "Traceback" not in proc.stderr


def test_selectors_bench_quick_json(tmp_path):
    path = tmp_path / "bench.json"
    proc = run(["-m", "benchmarks.selectors_bench", "--quick", "--no-strace", "-q",
                "--json", str(path)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(path.read_text())
    assert doc["errors"] == []
    results = doc["results"]
    assert results, "no cases in the JSON"
    backends = {r["backend"] for r in results}
    assert backends == {"Epoll", "Poll", "Select"}
    for r in results:
        assert r["ours_ns"]["median"] > 0, r
        if r["stdlib_ns"] is None:  # only the stdlib's select past fd 1023
            assert r["backend"] == "Select" and r["n"] > 1000 and r["stdlib_reason"], r
        else:
            assert r["ratio"] > 0 and r["stdlib_ns"]["median"] > 0, r
        # the kernel floor: every op that makes a syscall has one
        assert (r["floor_ns"] is None) == (r["floor_case"] is None), r
    assert any(r["backend"] == "Select" and r["n"] == 10000 for r in results)
    assert doc["meta"]["quick"] is True


def test_echo_bench_quick(tmp_path):
    out = tmp_path / "echo.json"
    proc = run(["-m", "benchmarks.echo_bench", "--quick", "--json", str(out)], timeout=180)
    errors = ""
    if out.exists():
        errors = "\n".join(f"{r['server']}: {r['error']}"
                           for r in json.loads(out.read_text())["runs"] if r["error"])
    assert proc.returncode == 0, errors + "\n" + proc.stdout + proc.stderr
    assert "reactor echo benchmark" in proc.stdout
    doc = json.loads(out.read_text())
    runs = [r for r in doc["runs"] if r["server"] == "reactor"]
    assert runs and all(r["ok"] for r in runs), doc["runs"]
    # The load client verified every echoed byte and reactor's echo served.
    assert all(r["derived"]["msgs_per_s"] > 0 for r in runs), runs
    assert all(r["client"]["errors"]["total"] == 0 for r in runs), runs


def test_soak_quick(tmp_path):
    # The soak benchmark's smoke run: every byte verified, memory flat.
    out = tmp_path / "soak.json"
    proc = run(["-m", "benchmarks.soak", "--quick", "--json", str(out)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["passed"] is True
    assert doc["client"]["errors"]["total"] == 0 and doc["client"]["messages"] > 0
    assert doc["memory"]["peak_rss_kib"] >= doc["memory"]["rss_kib_at_end"] > 0
    assert len(doc["memory"]["rss_kib_samples"]) >= 3
    assert "PASSED" in proc.stdout


def test_demo_compare_warms_up_alternates_and_takes_medians():
    import selectors

    import reactor
    from reactor import _demo

    calls = []
    values = {selectors.PollSelector: iter([99, 5, 1, 3, 2, 4]),
              reactor.PollSelector: iter([99, 10, 30, 20, 50, 40])}

    def measure(cls):
        calls.append("stdlib" if cls is selectors.PollSelector else "reactor")
        return next(values[cls])

    assert _demo.compare(measure, "PollSelector", rounds=5) == (3, 30)
    assert calls[:2] == ["stdlib", "reactor"]  # the warm-up, not counted
    rounds = [calls[i:i + 2] for i in range(2, len(calls), 2)]
    assert rounds == [["stdlib", "reactor"], ["reactor", "stdlib"]] * 2 + [["stdlib", "reactor"]]
