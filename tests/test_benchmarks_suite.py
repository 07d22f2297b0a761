"""``python -m benchmarks``, the whole suite, at tiny counts (``--smoke``), so
that no part of the benchmark code -- selectors with the C floor, every echo
server, the loop benchmarks, the plots and the summary -- can rot unnoticed.
The figures of a smoke run mean nothing; only their presence and sanity are
checked."""

import json
import math

import pytest

from test_smoke import ROOT, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ECHO_SERVERS = ("reactor", "chapter-selectors", "asyncio-protocol", "asyncio-protocol-reactor",
                "asyncio-streams", "asyncio-streams-reactor", "uvloop", "c-epoll")
LOOPS = ("reactor", "asyncio", "asyncio-reactor", "uvloop")


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = run(["-m", "benchmarks", "--smoke", "--out", str(out)], timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc, json.loads((out / "results.json").read_text())


def test_writes_json_summary_and_plots(smoke):
    out, proc, doc = smoke
    assert "Traceback" not in proc.stderr
    for name in ("scaling.png", "echo_1KiB.png", "echo_100KiB.png", "loop.png"):
        _check_png(out / name)
    assert set(doc["files"].values()) == {p.name for p in out.iterdir()}
    # progress was shown as it went, one line per section at least
    for section in ("selectors", "echo", "loop"):
        assert f"[suite] {section} done" in proc.stderr, proc.stderr


def test_json_describes_the_machine_and_the_commands(smoke):
    _, _, doc = smoke
    meta = doc["meta"]
    assert meta["mode"] == "smoke"
    for key in ("cpu_model", "nproc", "kernel", "python", "date", "git"):
        assert meta[key], key
    assert doc["commands"]["suite"].startswith("python -m benchmarks --smoke")
    for section in ("selectors", "echo", "loop"):
        assert doc["commands"][section].startswith(f"python -m benchmarks.{section}_bench")


def test_selectors_section_has_ratios_and_the_kernel_floor(smoke):
    _, _, doc = smoke
    sel = doc["selectors"]
    assert sel["errors"] == []
    assert sel["floor"]["error"] is None, sel["floor"]
    results = sel["results"]
    assert {r["backend"] for r in results} == {"Epoll", "Poll", "Select"}
    cases = {(r["case"], r["backend"], r["n"], r["ready"]) for r in results}
    for backend in ("Epoll", "Poll", "Select"):
        for n, ready in ((1, 1), (100, 1), (100, 100), (10000, 1), (10000, 10000)):
            assert ("select(0)", backend, n, ready) in cases
        for case in ("register+unregister", "modify(mask)", "modify(data)"):
            assert (case, backend, 1000, None) in cases
    for r in results:
        assert _positive(r["ours_ns"]["median"]), r
        if r["stdlib_ns"] is None:  # the stdlib's select cannot watch fd >= 1024
            assert r["backend"] == "Select" and r["n"] == 10000 and "1024" in r["stdlib_reason"]
        else:
            assert _positive(r["stdlib_ns"]["median"]) and _positive(r["ratio"]), r
        if r["floor_case"]:  # a syscall: timed from C as well
            assert _positive(r["floor_ns"]["median"]) and _positive(r["ours_x_floor"]), r
        else:
            assert r["floor_reason"].startswith("no syscall"), r
    epoll = [r for r in results if r["backend"] == "Epoll" and r["case"] != "modify(data)"]
    assert all(r["floor_case"] for r in epoll)


def test_echo_section_covers_every_server_and_size(smoke):
    _, _, doc = smoke
    echo = doc["echo"]
    assert [(c["size"], c["connections"]) for c in echo["cells"]] == [(1024, 2), (102400, 2)]
    for run_ in echo["runs"]:
        assert run_["ok"], run_
        assert run_["client"]["errors"]["total"] == 0, run_  # every byte verified
    for cell in echo["cells"]:
        for name in ECHO_SERVERS:
            if name in echo["skipped"]:  # only uvloop may be absent, and says why
                assert name == "uvloop" and "not installed" in echo["skipped"][name]
                continue
            s = cell["summary"][name]
            for metric in ("msgs_per_s", "p50_us", "p99_us", "cpu_us_per_msg"):
                assert _positive(s[metric]["median"]), (name, metric, s[metric])
            assert s["p99_us"]["median"] >= s["p50_us"]["median"]
            for metric in ("user_us_per_msg", "sys_us_per_msg"):  # tick-sampled: may be 0
                assert s[metric]["median"] >= 0, (name, metric)
    assert echo["meta"]["client_cpu"] != echo["meta"]["server_cpu"]


def test_loop_section_has_every_benchmark(smoke):
    _, _, doc = smoke
    loop = doc["loop"]
    assert set(loop["results"]) == {"chain", "timers", "wakeups"}
    for bench, by_impl in loop["results"].items():
        for impl in LOOPS:
            if impl in loop["skipped"]:
                assert impl == "uvloop"
                continue
            assert _positive(by_impl[impl]["ns"]["median"]), (bench, impl)
            if impl != "reactor":
                assert _positive(by_impl[impl]["x_base"]), (bench, impl)


def test_summary_has_headlines_plots_and_commands(smoke):
    out, _, doc = smoke
    md = (out / "summary.md").read_text()
    assert "smoke run" in md and "they mean nothing" in md
    for text in ("## Selectors", "## Echo, end to end", "## Loop dispatch",
                 "epoll: select(0), 1 of 10,000 ready", "n/a (fd >= 1024)",
                 "(scaling.png)", "(echo_1KiB.png)", "(echo_100KiB.png)", "(loop.png)",
                 doc["commands"]["suite"], doc["commands"]["selectors"],
                 doc["commands"]["echo"], doc["commands"]["loop"], doc["meta"]["cpu_model"]):
        assert text in md, text


def test_runs_without_uvloop(tmp_path):
    """uvloop is an optional extra: without it the suite says so and goes on."""
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "uvloop.py").write_text("raise ImportError('uvloop hidden by the test')\n")
    out = tmp_path / "out"
    proc = run(["-m", "benchmarks", "--smoke", "--sections", "echo,loop", "--out", str(out)],
               timeout=120, env={"PYTHONPATH": f"{fake}:{ROOT}"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "uvloop is not installed" in proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert "not installed" in doc["echo"]["skipped"]["uvloop"]
    assert "not installed" in doc["loop"]["skipped"]["uvloop"]
    assert all("uvloop" not in c["summary"] for c in doc["echo"]["cells"])
    assert "not installed" in (out / "summary.md").read_text()
    _check_png(out / "loop.png")


def test_readme_section_is_generated_from_the_json(smoke):
    out, _, doc = smoke
    section = out / "README_SECTION.md"
    proc = run(["-m", "benchmarks.report", str(out), str(section)], timeout=60)
    assert proc.returncode == 0, proc.stderr
    md = section.read_text()
    assert md.startswith("## Benchmarks")
    assert "/scaling.png)" in md and doc["commands"]["suite"] in md
    for text in ("| operation | reactor | stdlib |", "| server | msgs/s |",
                 "| benchmark | reactor |", doc["meta"]["cpu_model"], doc["meta"]["kernel"],
                 doc["meta"]["python"]):
        assert text in md, text
    section.unlink()  # the summary's file list stays as the suite wrote it
