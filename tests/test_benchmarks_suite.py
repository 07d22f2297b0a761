"""``python -m benchmarks``, the whole suite, at tiny counts (``--smoke``), so
that no part of the benchmark code -- the pyperf micro-benchmarks with the C
floor, every echo server on the echo driver, file IO, the plots and the
summary -- can rot unnoticed.  The figures of a smoke run mean nothing; only their
presence and sanity are checked."""

import json
import math
import subprocess
import sys

import pytest

from test_smoke import ROOT, run

sys.path.insert(0, str(ROOT))
from benchmarks import driver, selectors_bench  # noqa: E402
from reactor import uring_available  # noqa: E402
from reactor.models.driver import Case, Server  # noqa: E402

pytestmark = pytest.mark.long  # CI runs these once, on its main Python

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ECHO_SECTIONS = ("echo", "echo-sizes", "tls", "uring", "models", "soak")


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


def _may_be_missing(server, why):
    """The test extra installs every baseline (uvloop too: without it,
    test_runs_without_uvloop shows what happens); only where this machine
    refuses io_uring may the io_uring servers be missing, saying why."""
    return not uring_available() and "io_uring" in why


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = run(["-m", "benchmarks", "--smoke", "--out", str(out)], timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc, json.loads((out / "results.json").read_text())


def test_writes_json_summary_plots_and_pyperf_files(smoke):
    out, proc, doc = smoke
    assert "Traceback" not in proc.stderr
    for section in (*ECHO_SECTIONS, "selectors", "loop", "import", "files"):
        assert f"[suite] {section} done" in proc.stderr, proc.stderr
    assert sorted(doc["plots"].values()) == sorted(p.name for p in out.glob("*.png"))
    for name in (
        "scaling.png",
        "loop.png",
        "echo_1KiB.png",
        "echo-sizes_100KiB.png",
        "tls_1KiB.png",
        "uring_1KiB.png",
        "models_1KiB.png",
        "soak.png",
    ):
        _check_png(out / name)
    # pyperf's own tools read the micro-benchmarks' files
    files = [str(out / doc["selectors"]["files"][i]) for i in ("stdlib", "reactor", "kernel")]
    compare = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", *files, "--table"],
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0, compare.stderr
    assert "epoll select(0) N=1 ready=1" in compare.stdout


def test_json_describes_the_machine_and_the_commands(smoke):
    _, _, doc = smoke
    meta = doc["meta"]
    assert meta["mode"] == "smoke" and meta["command"].startswith("python -m benchmarks --smoke")
    for key in ("cpu", "nproc", "kernel", "python", "date", "git"):
        assert meta[key], key
    assert doc["selectors"]["command"].startswith("python -m benchmarks.selectors_bench --impl")
    assert doc["echo"]["command"] == "python -m benchmarks --smoke --sections echo"


def test_selectors_have_every_case_and_the_kernel_floor(smoke):
    _, _, doc = smoke
    sel = doc["selectors"]
    assert sel["errors"] == [] and sel["unavailable"] == {}
    for name, op, backend, n, ready in selectors_bench.cases("1,10000"):
        by_impl = sel["benchmarks"][name]
        assert _positive(by_impl["reactor"]["median"]), name
        # the stdlib's select refuses fds >= 1024; the floor only times syscalls
        assert ("stdlib" in by_impl) == (not selectors_bench.stdlib_refuses(backend, n)), name
        assert ("kernel" in by_impl) == ((op, backend) in selectors_bench.FLOOR), name
        assert all(_positive(v["median"]) for v in by_impl.values()), name


def test_loop_and_import_cover_every_implementation(smoke):
    _, _, doc = smoke
    loop = doc["loop"]
    assert loop["errors"] == []
    assert loop["unavailable"] == {}
    for bench in ("chain", "timers", "wakeups"):
        assert (
            set(loop["benchmarks"][bench])
            == set(loop["files"])
            >= {"reactor", "asyncio", "asyncio-reactor"}
        )
        assert all(_positive(v["median"]) for v in loop["benchmarks"][bench].values())
    assert set(doc["import"]["benchmarks"]["import"]) == {"stdlib", "reactor"}


@pytest.mark.parametrize("section", ECHO_SECTIONS)
def test_every_echo_server_ran_or_says_why_not(smoke, section):
    _, _, doc = smoke
    case = doc[section]
    for server, why in case["unavailable"].items():
        assert _may_be_missing(server, why), (server, why)
    assert not any("error" in r or r["errors"] for r in case["runs"]), case["runs"]
    assert all(
        e["exit"] == 0 and not e["traceback"] for exits in case["exits"].values() for e in exits
    ), case["exits"]
    for row in case["summary"]:
        assert row["server"] not in case["unavailable"] and row["runs"] == 1, row
        for metric in ("msgs_per_s", "p50_us", "rss_mib"):
            assert _positive(row[metric]), (row["server"], metric)
        # CPU times come in 10 ms ticks: a loaded machine may give a 0.1 s window none
        assert row["p99_us"] >= row["p50_us"] and row["cpu_us_per_msg"] >= 0
    ran = {r["server"] for r in case["summary"]}
    assert ran | set(case["unavailable"]) == set(case["case"]["servers"])
    assert set(case["exits"]) == ran  # every server that ran was stopped and checked
    if section == "tls":
        assert all(r["client"]["tls"] for r in case["runs"]) and "asyncio-tls" in ran
    if section == "soak":
        assert case["memory"]["passed"], case["memory"]
    if section == "models":  # each server alone, restarted per repetition; model 2 spins
        assert case["case"]["alone"]
        assert set(case["unavailable"]) <= (set() if uring_available() else {"m5-io_uring"})
        idle = {r["server"]: r["idle_cpu_pct"] for r in case["summary"]}
        assert idle["m2-nonblocking"] > 10 and idle["m3-epoll"] < 10, idle


def test_targets_of_issues_9_and_16_are_computed_or_say_why(smoke):
    _, _, doc = smoke
    rows = {
        (r["numerator"], r["denominator"], r["metric"]): r
        for section in ("echo", "aiohttp")
        for r in doc[section]["ratios"]
    }
    judged = [ratio for ratio in driver.RATIOS if ratio.target is not None]
    assert {ratio.issue for ratio in judged} == {9, 16}
    for ratio in judged:
        row = rows[ratio.numerator, ratio.denominator, ratio.metric]
        assert (row["target"], row["issue"]) == (ratio.target, ratio.issue)
        # (CPU times come in 10 ms ticks: a smoke run may see none)
        assert _positive(row.get("ratio")) or "too short a run" in row["why"], row
    assert _positive(rows["tcpserver", "c-epoll", "msgs_per_s"]["ratio"])


def test_issue_11_echo_on_io_uring_beside_epoll(smoke):
    if not uring_available():
        pytest.skip(uring_available().reason)
    _, _, doc = smoke
    rows = {
        (r["numerator"], r["metric"]): r
        for r in doc["uring"]["ratios"]
        if r["denominator"] == "tcpserver"
    }
    for server in ("tcpserver-uring", "tcpserver-uring-per-recv"):
        for metric in ("user_us_per_msg", "cpu_us_per_msg"):
            row = rows[server, metric]
            assert _positive(row.get("ratio")) or "too short a run" in row["why"], row


def test_files_measures_every_workload_and_baseline(smoke):
    _, _, doc = smoke
    files = doc["files"]
    assert files["errors"] == [] and files["command"] == "python -m benchmarks.files_bench --smoke"
    # reactor's files are io_uring's: where this machine refuses it, reactor
    # is skipped (saying so) rather than timed on its thread-pool fallback
    optional = set() if uring_available() else {"reactor"}  # the test extra has aiofiles
    assert set(files["skipped"]) <= optional, files["skipped"]
    for workload in ("random", "small"):
        by_impl = files["results"][workload]
        assert set(by_impl) | set(files["skipped"]) == {
            "reactor",
            "aiofiles",
            "aiofiles-pread",
            "to_thread",
            "sync",
        }
        for impl, data in by_impl.items():
            assert (
                data["median"]["reads"]
                == files["config"]["reads" if workload == "random" else "files"]
            )
            assert _positive(data["median"]["reads_per_s"]), (workload, impl)
        if "reactor" in by_impl:
            assert set(files["ratios"][workload]) == set(by_impl) - {"reactor"}


def test_summary_has_every_section_with_its_command(smoke):
    out, _, doc = smoke
    md = (out / "summary.md").read_text()
    assert "smoke run" in md and "they mean nothing" in md
    for text in (
        "## Selectors",
        "## Loop dispatch",
        "## Import time",
        "## Echo: one asyncio",
        "## Echo over TLS",
        "## Echo on io_uring vs epoll",
        "## The five IO models",
        "## Soak",
        "**PASSED**",
        "n/a",
        "(scaling.png)",
        "(echo_1KiB.png)",
        "significance is pyperf's",
        "epoll: select(0), 1 of 10,000 ready",
        "## File IO",
        doc["meta"]["cpu"],
    ):
        assert text in md, text
    if "reactor" in doc["files"]["results"]["random"]:
        assert "| reactor | " in md and "reactor / to_thread: **" in md
    if {"reactor", "aiofiles"} <= set(doc["files"]["results"]["random"]):
        assert "issue 11's targets: >= 4x, <= 0.25x" in md
    for section in ("selectors", "loop", "import", *ECHO_SECTIONS, "files"):
        assert doc[section]["command"] in md, section


def test_readme_section_is_generated_from_the_json(smoke, tmp_path):
    out, _, doc = smoke
    section = tmp_path / "README_SECTION.md"
    proc = run(["-m", "benchmarks.report", str(out), str(section)], timeout=60)
    assert proc.returncode == 0, proc.stderr
    md = section.read_text()
    assert md.startswith("## Benchmarks") and "python -m benchmarks --quick" in md
    for text in (
        "/scaling.png)",
        "| benchmark | stdlib | reactor | kernel |",
        "| server | msgs/s",
        doc["selectors"]["command"],
        doc["echo"]["command"],
        doc["meta"]["kernel"],
    ):
        assert text in md, text


def test_runs_without_uvloop(tmp_path):
    """uvloop is an optional extra: without it its rows say why, and the rest runs."""
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "uvloop.py").write_text("raise ImportError('uvloop hidden by the test')\n")
    out = tmp_path / "out"
    proc = run(
        ["-m", "benchmarks", "--smoke", "--sections", "loop,tls", "--out", str(out)],
        timeout=120,
        env={"PYTHONPATH": f"{fake}:{ROOT}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert "uvloop hidden by the test" in doc["loop"]["unavailable"]["uvloop"]
    assert "uvloop hidden by the test" in doc["tls"]["unavailable"]["uvloop-tls"]
    assert "asyncio-tls" in {r["server"] for r in doc["tls"]["summary"]}
    assert "not available: ImportError: uvloop hidden" in (out / "summary.md").read_text()


def test_a_server_that_does_not_start_is_a_row_not_a_crash(monkeypatch):
    monkeypatch.setitem(
        driver.SERVERS,
        "broken",
        Server((sys.executable, "-c", "raise SystemExit('broken: no such API')")),
    )
    for alone in (False, True):
        case = Case(
            ("broken", "c-epoll"), connections=(1,), duration=0.05, warmup=0, alone=alone, repeat=2
        )
        result = driver.run_case(case)
        assert result["unavailable"] == {"broken": "broken: no such API"}
        assert [r["server"] for r in result["summary"]] == ["c-epoll"]
        assert result["summary"][0]["msgs_per_s"] > 0 and result["summary"][0]["runs"] == 2
        assert len(result["exits"]["c-epoll"]) == (2 if alone else 1)  # restarted per rep
