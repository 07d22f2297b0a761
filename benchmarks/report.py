"""The suite's Markdown: ``summary.md`` (every table, each with its command)
and the top-level README's Benchmarks section, from ``results.json`` alone.

    python -m benchmarks.report DIR [README_SECTION.md]   # rebuild DIR/summary.md
"""

from __future__ import annotations

import json
import os
import sys

from benchmarks._harness import ROOT
from benchmarks.driver import CASES
from reactor.models.driver import bad_exits, find

SELECTOR_HEADLINE = (
    ("epoll: select(0), 1 of 10,000 ready", "epoll select(0) N=10000 ready=1"),
    ("epoll: select(0), 1,000 of 1,000 ready", "epoll select(0) N=1000 ready=1000"),
    ("epoll: register + unregister, 1,000 registered", "epoll register+unregister N=1000"),
    ("epoll: modify(), mask change", "epoll modify(mask) N=1000"),
    ("poll: select(0), 1 of 1,000 ready", "poll select(0) N=1000 ready=1"),
    ("select: select(0), 1 of 1,000 ready", "select select(0) N=1000 ready=1"),
    ("select: select(0), 1 of 10,000 ready", "select select(0) N=10000 ready=1"),
)
# time ratios a / b shown beside each micro-benchmark (> 1: b is faster)
PAIRS = {
    "selectors": (("stdlib", "reactor"), ("reactor", "kernel")),
    "loop": (("asyncio", "reactor"), ("asyncio-reactor", "reactor"), ("uvloop", "reactor")),
    "import": (("reactor", "stdlib"),),
}
TITLES = {
    "selectors": "Selectors: reactor vs the stdlib vs the kernel",
    "loop": "Loop dispatch",
    "import": "Import time",
    "echo": "Echo: one asyncio.Protocol on four loops, and asyncio streams",
    "aiohttp": "aiohttp's hello world on three asyncio loops",
    "echo-sizes": "Echo: sizes",
    "tls": "Echo over TLS",
    "uring": "Echo on io_uring vs epoll",
    "models": "The five IO models",
    "soak": "Soak",
    "files": "File IO: reactor.open_file vs the thread pools",
}
ECHO_COLUMNS = (
    ("msgs/s", "msgs_per_s", 0),
    ("p50 µs", "p50_us", 0),
    ("p99 µs", "p99_us", 0),
    ("user µs/msg", "user_us_per_msg", 2),
    ("sys µs/msg", "sys_us_per_msg", 2),
    ("CPU µs/msg", "cpu_us_per_msg", 2),
    ("RSS MiB", "rss_mib", 1),
    ("other load %", "other_cpu_pct", 0),
)
METRIC_NAMES = {
    "user_us_per_msg": "user CPU per message",
    "cpu_us_per_msg": "total CPU per message",
    "msgs_per_s": "messages per second",
}


def duration(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:,.0f} ns"
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def table(header, rows) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *("| " + " | ".join(map(str, row)) + " |" for row in rows),
        "",
    ]


def machine_line(meta) -> str:
    return (
        f"{meta['cpu']}, {meta['nproc']} cores, Linux {meta['kernel']}, "
        f"{meta['python']}, git {meta['git']}, {meta['date']}"
    )


def micro_table(section: str, doc: dict, names=None) -> list[str]:
    impls = [i for i in doc["files"]]
    pairs = [(a, b) for a, b in PAIRS[section] if a in impls and b in impls]
    rows = []
    for label, name in names or [(n, n) for n in doc["benchmarks"]]:
        by_impl = doc["benchmarks"].get(name)
        if by_impl is None:
            continue
        cells = [duration(by_impl[i]["median"]) if i in by_impl else "n/a" for i in impls]
        ratios = [
            f"{by_impl[a]['median'] / by_impl[b]['median']:.2f}x"
            if a in by_impl and b in by_impl
            else "-"
            for a, b in pairs
        ]
        rows.append([label, *cells, *ratios])
    out = [
        "pyperf's median per operation over its worker processes; `a / b`: a's time over "
        "b's (> 1: b is faster).",
        "",
    ]
    out += table(["benchmark", *impls, *(f"{a} / {b}" for a, b in pairs)], rows)
    out += [f"- {impl}: not available: {why}" for impl, why in doc["unavailable"].items()]
    if section == "selectors" and "stdlib" in impls:
        out.append(
            "- stdlib n/a: the stdlib's SelectSelector refuses fds >= 1024 (ValueError); "
            "kernel n/a: the operation makes no syscall"
        )
    return out + [""]


def echo_table(doc: dict, size: int, conns: int) -> list[str]:
    rows = []
    for name in doc["case"]["servers"]:
        row = find(doc["summary"], name, size, conns) or {"why": "no run"}
        why = (
            f"not available: {doc['unavailable'][name]}"
            if name in doc["unavailable"]
            else f"FAILED: {row.get('why')}"
        )
        rows.append(
            [name, *(f"{row[m]:,.{nd}f}" for _, m, nd in ECHO_COLUMNS)]
            if row.get("runs")
            else [name, why, *[""] * (len(ECHO_COLUMNS) - 1)]
        )
    return table(["server", *(c[0] for c in ECHO_COLUMNS)], rows)


def ratio_lines(doc: dict) -> list[str]:
    out = []
    for r in doc["ratios"]:
        what = (
            f"{r['numerator']} / {r['denominator']}, {METRIC_NAMES[r['metric']]}, "
            f"{r['size']:,} B x {r['connections']}"
        )
        # a target is for its issue's cell (1 KiB x 100 connections, say);
        # the other cells show the same ratios unjudged
        judged = r["target"] and [r["size"], r["connections"]] == r.get("cell", [1024, 100])
        target = f" (issue {r.get('issue') or 9}'s target: <= {r['target']})" if judged else ""
        if "ratio" not in r:
            out.append(f"- {what}: n/a{target}: {r['why']}")
            continue
        verdict = "" if not judged else " met" if r["ratio"] <= r["target"] else " MISSED"
        spread = (
            f" (runs: {min(r['paired']):.2f}-{max(r['paired']):.2f})"
            if len(r["paired"]) > 1
            else ""
        )
        out.append(f"- {what}: **{r['ratio']:.2f}x**{spread}{target}{verdict}")
    return out + [""]


def echo_section(section: str, doc: dict, plots: dict, commands: bool = True) -> list[str]:
    cfg = doc["case"]
    how = "each server started alone (model 2 spins)" if cfg["alone"] else "servers interleaved"
    out = [
        f"{cfg['repeat']} run(s) per server and cell of {cfg['duration']:g} s after "
        f"{cfg['warmup']:g} s of load; {how}, pinned to one core, the C client to the "
        "other; medians. CPU per message is the server's (/proc); 'other load' is what "
        "other work took of the server's core during a run.",
        "",
    ]
    m = doc.get("memory", {})
    rss = (
        "not judged under ASan"
        if not m.get("rss_checked", True)
        else "flat"
        if m.get("flat")
        else "NOT FLAT"
    )
    if "why" in m:
        out += [f"**FAILED**: {m['why']}", ""]
    elif m:
        out += [
            f"**{'PASSED' if m['passed'] else 'FAILED'}**: {m['messages']:,} messages, "
            f"{m['errors']} byte errors; server RSS {m['rss_mib_start']:.1f} MiB after the "
            f"first tenth, {m['rss_mib_end']:.1f} MiB at the end, peak "
            f"{m['peak_rss_mib'] or 0:.1f} MiB ({m['growth_kib']:+,.0f} KiB, slope "
            f"{m['slope_kib_per_min']:+,.0f} KiB/min: {rss}).",
            "",
        ]
    out += ratio_lines(doc) if doc["ratios"] else []
    if cfg["idle_cpu_at"]:
        out += [
            f"Server CPU while {cfg['idle_cpu_at']:,} connections sit silent, % of its "
            "core: "
            + ", ".join(
                f"{r['server']} {r['idle_cpu_pct']:.1f}"
                for r in doc["summary"]
                if "idle_cpu_pct" in r
            ),
            "",
        ]
    out += [f"![{section}]({plots[section]})", ""] if section in plots else []
    for size in cfg["sizes"]:
        key = f"{section}_{size // 1024}KiB" if size % 1024 == 0 else f"{section}_{size}B"
        if key in plots:
            out += [f"![{section}, {size:,}-byte messages]({plots[key]})", ""]
        for conns in cfg["connections"]:
            out += [f"{size:,}-byte messages, {conns} connection{'s' * (conns != 1)}:", ""]
            out += echo_table(doc, size, conns)
    out += [
        f"- {r['server']}, {r['size']:,} B x {r['connections']}: made twice, no message "
        "came back the first time"
        for r in doc["runs"]
        if r.get("retried")
    ]
    if commands:
        out += [f"- `{name}`: `{cmd}`" for name, cmd in doc["commands"].items()]
    return out + [""]


FILE_COLUMNS = (
    ("reads/s", "reads_per_s", 0),
    ("CPU µs/read", "cpu_us_per_read", 2),
    ("user µs/read", "user_us_per_read", 2),
    ("sys µs/read", "sys_us_per_read", 2),
)


def files_lines(doc: dict) -> list[str]:
    """Per workload, every implementation; then reactor's ratios to each
    baseline, against aiofiles judged by issue 11's targets."""
    if "results" not in doc:  # it failed: failures() says why
        return []
    cfg = doc["config"]
    what = {
        "random": f"{cfg['reads']:,} random {cfg['block']:,}-byte preads of a "
        f"{cfg['file_size'] >> 20} MiB file in the page cache",
        "small": f"{cfg['files']:,} small files ({cfg['block']:,} bytes) read whole",
    }
    out = [
        f"{cfg['tasks']} tasks, loop: {cfg['loop']}; medians of {cfg['repeat']} round(s), "
        "the implementations interleaved; CPU per read is the whole process's, every "
        "thread.",
        "",
    ]
    for workload, by_impl in doc["results"].items():
        out += [f"{what[workload]}:", ""]
        out += table(
            ["implementation", *(c[0] for c in FILE_COLUMNS), "reads/s min-max"],
            [
                [
                    impl,
                    *(f"{d['median'][m]:,.{nd}f}" for _, m, nd in FILE_COLUMNS),
                    f"{d['min_max'][0]:,.0f}-{d['min_max'][1]:,.0f}",
                ]
                for impl, d in by_impl.items()
            ],
        )
        for impl, r in doc["ratios"].get(workload, {}).items():
            met = r["reads_per_s_x"] >= 4 and r["cpu_per_read_x"] <= 0.25
            verdict = (
                f" (issue 11's targets: >= 4x, <= 0.25x: {'met' if met else 'MISSED'})"
                if impl == "aiofiles"
                else ""
            )
            out.append(
                f"- reactor / {impl}: **{r['reads_per_s_x']:.2f}x** the reads per "
                f"second, **{r['cpu_per_read_x']:.2f}x** the CPU per read{verdict}"
            )
        out.append("")
    return out + [f"- {impl}: not available: {why}" for impl, why in doc["skipped"].items()] + [""]


def failures(doc: dict) -> list[str]:
    """What makes the suite exit 2."""
    out = [f"{s}: {e}" for s in (*PAIRS, "files") if s in doc for e in doc[s]["errors"]]
    for section in (s for s in CASES if s in doc):
        d = doc[section]
        out += [
            f"{section}: {r['server']} {r['size']} B x {r['connections']}: "
            f"{r.get('error') or str(r['errors']) + ' echo errors'}"
            for r in d["runs"]
            if "error" in r or r.get("errors")
        ]
        out += [
            f"{section}: {n} exited with {e['exit']}: {e['last_line']}"
            + (f"; it logged {e['traceback']}" if e["traceback"] else "")
            for n, bad in bad_exits(d).items()
            for e in bad
        ]
        if "memory" in d and not d["memory"]["passed"]:
            out.append(f"{section}: memory or bytes check failed: {d['memory']}")
    return out


def section_lines(section: str, d: dict, plots: dict, full: bool = True) -> list[str]:
    """One section's tables and plots (`plots`: key -> path); `full` adds
    every micro-benchmark case, pyperf's comparison and the servers'
    commands (summary.md has them; the README only the headline)."""
    if section == "files":
        return files_lines(d)
    if section in CASES:
        return echo_section(section, d, plots, commands=full)
    out = []
    if section == "selectors":
        out += micro_table(section, d, SELECTOR_HEADLINE)
        out += [f"![select(0) time vs registered fds]({plots.get('scaling')})", ""]
        if not full:
            return out
        out += ["Every case:", ""]
    elif section == "loop" and full:
        out += [f"![loop dispatch]({plots.get('loop')})", ""]
    out += micro_table(section, d)
    if full and d.get("compare_to"):
        out += [
            "`python -m pyperf compare_to ... --table` (significance is pyperf's):",
            "",
            "```",
            d["compare_to"].rstrip(),
            "```",
            "",
        ]
    return out


def summary(doc: dict) -> str:
    meta = doc["meta"]
    out = [
        f"# reactor benchmarks: {meta['mode']} run",
        "",
        f"`{meta['command']}`, {meta['elapsed_s']:.0f} s, on {machine_line(meta)}; load "
        f"average at start {meta['loadavg']}.",
        "",
    ]
    if meta["mode"] != "full":
        out += [
            f"**A {meta['mode']} run: the counts are tiny, so the figures only show that "
            "every benchmark runs; they mean nothing.**",
            "",
        ]
    out += [f"- FAILED: {f}" for f in failures(doc)]
    for section in (s for s in TITLES if s in doc):
        out += [f"## {TITLES[section]}", "", f"`{doc[section]['command']}`", ""]
        out += section_lines(section, doc[section], doc["plots"])
    return "\n".join(out)


def readme_section(doc: dict, rel_dir: str) -> str:
    """The README's Benchmarks section from a run committed in rel_dir."""
    meta = doc["meta"]
    out = [
        "## Benchmarks",
        "",
        "Every figure is measured beside its baseline in the same run, "
        "from the repository root (`pip install -e '.[bench]'` first):",
        "",
        "```sh",
        "python -m benchmarks            # everything, under 10 minutes on 2 cores",
        "python -m benchmarks --quick    # the same at small counts, under a minute",
        "```",
        "",
        f"It shows its progress and writes JSON (pyperf's too), a Markdown summary "
        f"and PNG plots to `benchmarks/results/`; cases and method in "
        f"[benchmarks/README.md](benchmarks/README.md). The figures below are one "
        f"{meta['mode']} run, `{meta['command']}`, committed in [{rel_dir}/]({rel_dir}/) "
        f"([summary.md]({rel_dir}/summary.md) has every table), on {machine_line(meta)}.",
        "",
    ]
    plots = {key: f"{rel_dir}/{name}" for key, name in doc["plots"].items()}
    for section in ("selectors", "echo", "aiohttp", "loop", "import", "uring", "files", "soak"):
        if section in doc:
            out += [f"### {TITLES[section]}", "", f"`{doc[section]['command']}`", ""]
            out += section_lines(section, doc[section], plots, full=False)
    return "\n".join(out)


if __name__ == "__main__":
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("benchmarks", "results")
    with open(os.path.join(out_dir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary(results))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(readme_section(results, os.path.relpath(os.path.abspath(out_dir), ROOT)))
