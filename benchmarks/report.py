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
PAIRS = {"selectors": (("stdlib", "reactor"), ("reactor", "kernel")),
         "loop": (("asyncio", "reactor"), ("asyncio-reactor", "reactor"), ("uvloop", "reactor")),
         "import": (("reactor", "stdlib"),)}
TITLES = {"selectors": "Selectors: reactor vs the stdlib vs the kernel",
          "loop": "Loop dispatch", "import": "Import time",
          "echo": "Echo: one asyncio.Protocol on four loops", "echo-sizes": "Echo: sizes",
          "tls": "Echo over TLS", "models": "IO models", "soak": "Soak", "files": "File IO"}
ECHO_COLUMNS = (("msgs/s", "msgs_per_s", 0), ("p50 µs", "p50_us", 0), ("p99 µs", "p99_us", 0),
                ("user µs/msg", "user_us_per_msg", 2), ("sys µs/msg", "sys_us_per_msg", 2),
                ("CPU µs/msg", "cpu_us_per_msg", 2), ("RSS MiB", "rss_mib", 1),
                ("other load %", "other_cpu_pct", 0))
METRIC_NAMES = {"user_us_per_msg": "user CPU per message", "cpu_us_per_msg": "total CPU per "
                "message", "msgs_per_s": "messages per second"}


def duration(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:,.0f} ns"
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows), ""]


def machine_line(meta) -> str:
    return (f"{meta['cpu_model']}, {meta['nproc']} cores, Linux {meta['kernel']}, "
            f"{meta['python']}, git {meta['git']}, {meta['date']}")


def micro_table(section: str, doc: dict, names=None) -> list[str]:
    impls = [i for i in doc["files"]]
    pairs = [(a, b) for a, b in PAIRS[section] if a in impls and b in impls]
    rows = []
    for label, name in names or [(n, n) for n in doc["benchmarks"]]:
        by_impl = doc["benchmarks"].get(name)
        if by_impl is None:
            continue
        cells = [duration(by_impl[i]["median"]) if i in by_impl else "n/a" for i in impls]
        ratios = [f"{by_impl[a]['median'] / by_impl[b]['median']:.2f}x"
                  if a in by_impl and b in by_impl else "-" for a, b in pairs]
        rows.append([label, *cells, *ratios])
    out = ["pyperf's median per operation over its worker processes; `a / b`: a's time over "
           "b's (> 1: b is faster).", ""]
    out += table(["benchmark", *impls, *(f"{a} / {b}" for a, b in pairs)], rows)
    out += [f"- {impl}: not available: {why}" for impl, why in doc["unavailable"].items()]
    if section == "selectors" and "stdlib" in impls:
        out.append("- stdlib n/a: the stdlib's SelectSelector refuses fds >= 1024 (ValueError); "
                   "kernel n/a: the operation makes no syscall")
    return out + [""]


def echo_table(doc: dict, size: int, conns: int) -> list[str]:
    rows = []
    for name in doc["config"]["servers"]:
        row = next((r for r in doc["summary"] if (r["server"], r["size"], r["connections"])
                    == (name, size, conns)), None)
        if row:
            rows.append([name, *(f"{row[m]:,.{nd}f}" for _, m, nd in ECHO_COLUMNS)])
        else:
            why = doc["unavailable"].get(name) or next(
                (r.get("error") or f"{r['errors']} echo errors" for r in doc["runs"]
                 if r["server"] == name and r["size"] == size and r["connections"] == conns),
                "no run")
            rows.append([name, f"not available: {why}" if name in doc["unavailable"]
                         else f"FAILED: {why}", *[""] * (len(ECHO_COLUMNS) - 1)])
    return table(["server", *(c[0] for c in ECHO_COLUMNS)], rows)


def ratio_lines(doc: dict) -> list[str]:
    out = []
    for r in doc["ratios"]:
        what = (f"{r['numerator']} / {r['denominator']}, {METRIC_NAMES[r['metric']]}, "
                f"{r['size']:,} B x {r['connections']}")
        target = f" (issue 9's target: <= {r['target']})" if r["target"] else ""
        if "ratio" not in r:
            out.append(f"- {what}: n/a{target}: {r['why']}")
            continue
        verdict = "" if not r["target"] else " met" if r["ratio"] <= r["target"] else " MISSED"
        spread = (f" (runs: {min(r['paired']):.2f}-{max(r['paired']):.2f})"
                  if len(r["paired"]) > 1 else "")
        out.append(f"- {what}: **{r['ratio']:.2f}x**{spread}{target}{verdict}")
    return out + [""]


def echo_section(section: str, doc: dict, plots: dict, commands: bool = True) -> list[str]:
    cfg = doc["config"]
    out = [f"{cfg['repeat']} run(s) per server and cell of {cfg['duration']:g} s after "
           f"{cfg['warmup']:g} s of load; servers interleaved, pinned to one core, the C client "
           "to the other; medians. CPU per message is the server's, from psutil; 'other load' "
           "is the most any other work took of either core during a run.", ""]
    if section == "soak" and "memory" in doc:
        m = doc["memory"]
        out += [f"**{'PASSED' if m['passed'] else 'FAILED'}**: {m['messages']:,} messages, "
                f"{m['errors']} byte errors; server RSS {m['rss_mib_start']:.1f} MiB after the "
                f"first tenth, {m['rss_mib_end']:.1f} MiB at the end, peak "
                f"{m['peak_rss_mib'] or 0:.1f} MiB ({m['growth_kib']:+,.0f} KiB, slope "
                f"{m['slope_kib_per_min']:+,.0f} KiB/min: "
                f"{'not judged under ASan' if not m.get('rss_checked', True) else 'flat' if m['flat'] else 'NOT FLAT'}).",
                ""]
    out += ratio_lines(doc) if doc["ratios"] else []
    out += [f"![{section}]({plots[section]})", ""] if section in plots else []
    for size in cfg["sizes"]:
        key = f"{section}_{size // 1024}KiB" if size % 1024 == 0 else f"{section}_{size}B"
        if key in plots:
            out += [f"![{section}, {size:,}-byte messages]({plots[key]})", ""]
        for conns in cfg["connections"]:
            out += [f"{size:,}-byte messages, {conns} connection{'s' * (conns != 1)}:", ""]
            out += echo_table(doc, size, conns)
    out += [f"- {r['server']}, {r['size']:,} B x {r['connections']}: made twice, no message "
            "came back the first time" for r in doc["runs"] if r.get("retried")]
    if commands:
        out += [f"- `{name}`: `{cmd}`" for name, cmd in doc["commands"].items()]
    return out + [""]


def failures(doc: dict) -> list[str]:
    """What makes the suite exit 2."""
    out = [f"{s}: {e}" for s in PAIRS if s in doc for e in doc[s]["errors"]]
    for section in (s for s in CASES if s in doc):
        d = doc[section]
        out += [f"{section}: {r['server']} {r['size']} B x {r['connections']}: "
                f"{r.get('error') or str(r['errors']) + ' echo errors'}"
                for r in d["runs"] if "error" in r or r["errors"]]
        out += [f"{section}: {n} exited with {e['exit']}: {e['last_line']}"
                + (f"; it logged {e['traceback']}" if e["traceback"] else "")
                for n, e in d["exits"].items() if e["exit"] or e["traceback"]]
        if "memory" in d and not d["memory"]["passed"]:
            out.append(f"{section}: memory or bytes check failed: {d['memory']}")
    return out


def summary(doc: dict) -> str:
    meta = doc["meta"]
    out = [f"# reactor benchmarks: {meta['mode']} run", "",
           f"`{meta['command']}`, {meta['elapsed_s']:.0f} s, on {machine_line(meta)}; load "
           f"average at start {meta['loadavg']}.", ""]
    if meta["mode"] != "full":
        out += [f"**A {meta['mode']} run: the counts are tiny, so the figures only show that "
                "every benchmark runs; they mean nothing.**", ""]
    out += [f"- FAILED: {f}" for f in failures(doc)]
    for section, title in TITLES.items():
        if section not in doc:
            continue
        out += [f"## {title}", "", f"`{doc[section]['command']}`", ""]
        if section in CASES:
            out += echo_section(section, doc[section], doc["plots"])
            continue
        if section == "files":  # files_bench.run()'s dict, as it is
            out += ["```json", json.dumps(doc[section], indent=1), "```", ""]
            continue
        if section == "selectors":
            out += micro_table(section, doc[section], SELECTOR_HEADLINE)
            out += ["![select(0) time vs registered fds](scaling.png)", "", "Every case:", ""]
        elif section == "loop":
            out += ["![loop dispatch](loop.png)", ""]
        out += micro_table(section, doc[section])
        if doc[section].get("compare_to"):
            out += ["`python -m pyperf compare_to ... --table` (significance is pyperf's):", "",
                    "```", doc[section]["compare_to"].rstrip(), "```", ""]
    return "\n".join(out)


def readme_section(doc: dict, rel_dir: str) -> str:
    """The README's Benchmarks section from a run committed in rel_dir."""
    meta = doc["meta"]
    out = ["## Benchmarks", "", "Every figure is measured beside its baseline in the same run, "
           "from the repository root (`pip install -e '.[bench]'` first):", "", "```sh",
           "python -m benchmarks            # everything, under 10 minutes on 2 cores",
           "python -m benchmarks --quick    # the same at small counts, under a minute",
           "```", "", f"It shows its progress and writes JSON (pyperf's too), a Markdown summary "
           f"and PNG plots to `benchmarks/results/`; cases and method in "
           f"[benchmarks/README.md](benchmarks/README.md). The figures below are one "
           f"{meta['mode']} run, `{meta['command']}`, committed in [{rel_dir}/]({rel_dir}/) "
           f"([summary.md]({rel_dir}/summary.md) has every table), on {machine_line(meta)}.", ""]
    for section in ("selectors", "echo", "loop", "import", "soak"):
        if section not in doc:
            continue
        d = doc[section]
        out += [f"### {TITLES[section]}", "", f"`{d['command']}`", ""]
        if section == "selectors":
            out += micro_table(section, d, SELECTOR_HEADLINE)
            out += [f"![select(0) time vs registered fds]({rel_dir}/scaling.png)", ""]
        elif section in CASES:
            plots = {key: f"{rel_dir}/{name}" for key, name in doc["plots"].items()}
            out += echo_section(section, d, plots, commands=False)
        else:
            out += micro_table(section, d)
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
