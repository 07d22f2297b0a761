"""The suite's Markdown summary: headline tables first, then every figure.

Reads only the results document that ``python -m benchmarks`` writes, so
``python -m benchmarks.report DIR`` rebuilds DIR/summary.md from
DIR/results.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys

from benchmarks import echo_bench, loop_bench, selectors_bench
from benchmarks._common import ROOT, echo_png, size_label
from benchmarks.selectors_bench import fmt_ns

# (label, case, backend, N, ready) of the selector headline rows
SELECTOR_HEADLINE = (
    ("epoll: select(0), 1 of 10,000 ready", "select(0)", "Epoll", 10000, 1),
    ("epoll: select(0), 1,000 of 1,000 ready", "select(0)", "Epoll", 1000, 1000),
    ("epoll: register + unregister (1,000 registered)", "register+unregister", "Epoll", 1000, None),
    ("epoll: modify(), mask change", "modify(mask)", "Epoll", 1000, None),
    ("poll: select(0), 1 of 1,000 ready", "select(0)", "Poll", 1000, 1),
    ("select: select(0), 1 of 1,000 ready", "select(0)", "Select", 1000, 1),
    ("select: select(0), 1 of 10,000 ready", "select(0)", "Select", 10000, 1),
)
ECHO_COLUMNS = (("msgs/s", "msgs_per_s", 0), ("p50 µs", "p50_us", 0), ("p99 µs", "p99_us", 0),
                ("user µs/msg", "user_us_per_msg", 2), ("sys µs/msg", "sys_us_per_msg", 2),
                ("CPU µs/msg", "cpu_us_per_msg", 2))


def _num(v, nd):
    return f"{v:,.{nd}f}"


def _rel(s, base, metric):
    b = base[metric]["median"]
    return f"{s[metric]['median'] / b:.2f}x" if b > 0 else "-"


def _find(results, case, backend, n, ready):
    for r in results:
        if (r["case"], r["backend"], r["n"], r["ready"]) == (case, backend, n, ready):
            return r
    return None


def machine_line(meta) -> str:
    return (f"{meta['cpu_model']}, {meta['nproc']} cores, Linux {meta['kernel']}, "
            f"{meta['python_impl']} {meta['python']}, git {meta['git']}, {meta['date']}")


def selector_headline(doc) -> list[str]:
    results = doc["selectors"]["results"]
    out = ["| operation | reactor | stdlib | stdlib / reactor | kernel floor | "
           "reactor / kernel | stdlib / kernel |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for label, case, backend, n, ready in SELECTOR_HEADLINE:
        r = _find(results, case, backend, n, ready)
        if r is None:
            continue
        s, f = r["stdlib_ns"], r["floor_ns"]
        out.append("| " + " | ".join((
            label, f"{fmt_ns(r['ours_ns']['median'])} ns",
            f"{fmt_ns(s['median'])} ns" if s else "n/a (fd >= 1024)",
            f"**{r['ratio']:.2f}x**" if s else "-",
            f"{fmt_ns(f['median'])} ns" if f else "no syscall",
            f"{r['ours_x_floor']:.2f}x" if f else "-",
            f"{r['stdlib_x_floor']:.2f}x" if f and s else "-")) + " |")
    return out


def headline_cell(echo) -> dict | None:
    for cell in echo["cells"]:
        if cell["headline"]:
            return cell
    return echo["cells"][0] if echo["cells"] else None


def echo_disturbance(echo) -> str:
    """How much of the two cores other work took during the echo runs."""
    other = [max(r["derived"].get("other_on_server_core_pct", 0),
                 r["derived"].get("other_on_client_core_pct", 0))
             for r in echo["runs"] if r["ok"]]
    if not other:
        return ""
    busy = sum(1 for x in other if x > echo_bench.BUSY_PCT)
    return (f"Other work on the machine took a median {statistics.median(other):.0f}% and at "
            f"most {max(other):.0f}% of the server's or the client's core during the echo "
            f"runs; {busy} of {len(other)} runs had more than {echo_bench.BUSY_PCT:g}% "
            f"(re-run up to {echo['config']['retry_busy']} time(s) each while the "
            f"{echo['config']['max_extra']} s allowance lasted, then kept).")


def echo_table(echo, cell, vs="reactor") -> list[str]:
    base = cell["summary"].get(vs)
    out = ["| server | " + " | ".join(c[0] for c in ECHO_COLUMNS) +
           f" | msgs/s vs {vs} | user CPU/msg vs {vs} | runs |",
           "|---|" + "---:|" * (len(ECHO_COLUMNS) + 3)]
    for name in echo["servers"]:
        s = cell["summary"].get(name)
        if s is None:
            out.append(f"| {name} | all runs failed |" + " |" * (len(ECHO_COLUMNS) + 2))
            continue
        cells = [_num(s[m]["median"], nd) for _, m, nd in ECHO_COLUMNS]
        rel = ["-", "-"]
        if base and name != vs:
            rel = [_rel(s, base, "msgs_per_s"), _rel(s, base, "user_us_per_msg")]
        out.append(f"| {name} | " + " | ".join(cells + rel) + f" | {s['runs']} |")
    for name, why in echo["skipped"].items():
        out.append(f"| {name} | {why} |" + " |" * (len(ECHO_COLUMNS) + 2))
    return out


def loop_headline(loop) -> list[str]:
    impls = list(loop["impls"]) + list(loop["skipped"])
    out = ["| benchmark | " + " | ".join(impls) + " |", "|---|" + "---:|" * len(impls)]
    for bench, by_impl in loop["results"].items():
        cells = []
        for impl in impls:
            r = by_impl.get(impl)
            if r is None:
                cells.append("not installed" if impl in loop["skipped"] else "-")
                continue
            x = f" ({r['x_base']:.2f}x)" if "x_base" in r else ""
            cells.append(f"{r['ns']['median'] / 1e3:,.2f} µs{x}")
        out.append(f"| {bench}: {loop['benches'][bench]} | " + " | ".join(cells) + " |")
    return out


def _intro(title, command, method) -> list[str]:
    return [f"## {title}", "", f"Same section alone: `{command}`. {method}", ""]


def build(doc: dict) -> str:
    meta, cmds = doc["meta"], doc["commands"]
    L = [f"# reactor benchmarks: {meta['mode']} run", "",
         f"Machine: {machine_line(meta)}. Load average at start {meta['loadavg_start']}, "
         f"at end {meta.get('loadavg_end')}.", "",
         f"Command (from the repository root): `{cmds['suite']}`, "
         f"{meta.get('elapsed_s', 0):.0f} s.", ""]
    if meta["mode"] != "full":
        L += [f"**A {meta['mode']} run: counts are tiny, so the figures only show that "
              "every benchmark runs; they mean nothing.**", ""]
    for note in doc.get("notes", []):
        L += [f"- {note}"]
    if doc.get("notes"):
        L.append("")

    if doc.get("selectors"):
        sel = doc["selectors"]
        cfg = sel["config"]
        L += _intro("Selectors: reactor vs the stdlib vs the kernel", cmds["selectors"],
              f"{cfg['processes']} fresh worker processes x {cfg['rounds_per_process']} "
              f"rounds of ~{cfg['batch_ms']:g} ms batches per case "
              f"({cfg['warmup_batches']} warm-up batch), pinned "
              f"({cfg['pinned']}); ours and the stdlib interleaved in each process. "
              "Median ns per operation over all rounds; `stdlib / reactor` is the median of "
              "the per-round paired ratios (> 1: reactor is faster); the kernel floor is the "
              "same syscall on the same fds timed from C (`benchmarks/floor.c`), run after "
              "each worker.")
        L += selector_headline(doc) + [""]
        L += ["![select(0) time vs registered fds, log-log](scaling.png)", ""]
        L += ["All cases:", "", selectors_bench.format_markdown_table(sel["results"]), ""]
        L += [f"- {n}" for n in selectors_bench.notes(sel["results"])]
        L += [f"- {selectors_bench.targets_line(sel['results'])} (targets from the selectors "
              "issue; `missed (within noise)`: the upper quartile of the paired ratios reaches it)"]
        sc = sel.get("strace_check", {})
        L += [f"- strace check, data-only `modify()` makes no `epoll_ctl`: {sc.get('status')}"
              + (f" ({sc.get('reason')})" if sc.get("reason") else "")]
        if sel["errors"]:
            L += [f"- **SANITY ERRORS**: {'; '.join(sel['errors'])}"]
        L.append("")

    if doc.get("echo"):
        echo = doc["echo"]
        cfg = echo["config"]
        head = headline_cell(echo)
        L += _intro("Echo, end to end", cmds["echo"], "Every server pinned to CPU "
              f"{echo['meta']['server_cpu']}, the compiled C client (`benchmarks/echo/client.c`, "
              f"verifies every byte) to CPU {echo['meta']['client_cpu']}; each connection "
              "ping-pongs one message at a time; each server warmed by one connection before "
              f"each run; {cfg['warmup']:g} s of load, then {cfg['duration']:g} s measured; "
              "servers interleaved. Medians over the runs; server CPU per message from "
              "`/proc/PID/stat` (user and system, tick-sampled) and schedstat (total, exact). "
              + echo_disturbance(echo))
        if head:
            L += [f"### Headline: {head['size']:,}-byte messages x {head['connections']} "
                  f"connections, {head['repeat']} runs per server", ""]
            L += echo_table(echo, head) + [""]
            for row in head["ratios"]:
                if row.get("ratio") is None:
                    continue
                tgt = (f" (target {row['op']} {row['target']}: {row['verdict']})"
                       if row["target"] is not None else "")
                paired = ", ".join(f"{p:.2f}" for p in row["paired"])
                L.append(f"- {row['label']}: **{row['ratio']:.2f}x** [runs: {paired}]{tgt}")
            L.append("")
        sizes = list(dict.fromkeys(c["size"] for c in echo["cells"]))
        for size in sizes:
            L += [f"### {size:,}-byte messages", "",
                  f"![echo, {size:,}-byte messages]({echo_png(size)})", ""]
            for cell in echo["cells"]:
                if cell["size"] == size and cell is not head:
                    L += [f"{cell['connections']} connection(s), {cell['repeat']} run(s) per "
                          "server:", ""] + echo_table(echo, cell) + [""]
        warnings = [w for c in echo["cells"] for w in c["warnings"]]
        failed = [r for r in echo["runs"] if not r["ok"]]
        for w in warnings:
            L.append(f"- warning: {w}")
        for r in failed:
            L.append(f"- **failed run**: {r['server']} ({r['connections']} x {r['size']} B): "
                     f"{r['error']}")
        L += ["", "Servers:", ""] + [f"- `{n}`: {s['description']} (`{s['command']}`)"
                                      for n, s in echo["servers"].items()]
        L.append("")

    if doc.get("loop"):
        loop = doc["loop"]
        cfg = loop["config"]
        L += _intro("Loop dispatch", cmds["loop"], f"{cfg['processes']} fresh pinned processes "
              f"x {cfg['rounds_per_process']} rounds ({cfg['warmup_rounds']} discarded); median "
              "µs per operation, in brackets the median per-round ratio to reactor.Reactor "
              "(> 1: reactor is faster).")
        L += loop_headline(loop) + ["", "![loop dispatch](loop.png)", "",
                                    loop_bench.format_markdown_table(loop), ""]
        L += [f"- `{i}`: {d}" for i, d in loop["impls"].items()]
        L += [f"- `{i}`: {why}" for i, why in loop["skipped"].items()]
        L.append("")
    return "\n".join(L)


def readme_section(doc: dict, rel_dir: str) -> str:
    """The top-level README's results section, from a full run whose files
    are committed in ``rel_dir`` (a path relative to the repository root)."""
    meta, cmds = doc["meta"], doc["commands"]
    L = ["## Benchmarks", "",
         "Every figure is measured beside its baseline in the same run, by one command from "
         "the repository root (`pip install -e '.[bench]'` first, for uvloop and matplotlib):",
         "", "```sh",
         "python -m benchmarks            # the whole suite, ~7.5 min on 2 cores",
         "python -m benchmarks --quick    # the same at small counts, < 1 min",
         "```", "",
         "It prints its progress and writes JSON, a Markdown summary and PNG plots to "
         "`benchmarks/results/`; method, cases and options in "
         f"[benchmarks/README.md](benchmarks/README.md). The figures below are one {meta['mode']} "
         "run, "
         f"`{cmds['suite']}`, committed in [{rel_dir}/]({rel_dir}/) "
         f"([summary.md]({rel_dir}/summary.md) has every table), on this machine: "
         f"{meta['cpu_model']} ({meta['nproc']} cores, shared with other work), Linux "
         f"{meta['kernel']}, {meta['python_impl']} {meta['python']}, {meta['date'][:10]}, "
         f"git {meta['git']}.", ""]
    if doc.get("selectors"):
        L += ["### Selectors: reactor vs the stdlib vs the kernel", "",
              f"This section alone: `{cmds['selectors']}`. Median ns per call over "
              f"{doc['selectors']['config']['processes']} fresh pinned processes; "
              "`stdlib / reactor` is the median of paired ratios timed back to back (> 1: "
              "reactor is faster); the kernel floor is the same syscall on the same fds timed "
              "from C.", ""]
        L += selector_headline(doc) + [""]
        L += ["One `select(0)` with one ready fd as idle fds grow: select and poll scan "
              "every fd on every call, epoll pays only for the ready one.", "",
              f"![select(0) time vs registered fds, log-log]({rel_dir}/scaling.png)", ""]
    if doc.get("echo"):
        echo = doc["echo"]
        head = headline_cell(echo)
        if head:
            L += [f"### Echo: {head['size']:,}-byte messages, {head['connections']} connections",
                  "", f"This section alone: `{cmds['echo']}`. Servers on CPU "
                  f"{echo['meta']['server_cpu']}, the compiled C client on CPU "
                  f"{echo['meta']['client_cpu']}; median of {head['repeat']} runs of "
                  f"{echo['config']['duration']:g} s per server; server CPU per message, user "
                  "and system, from /proc (user/system tick-sampled). " + echo_disturbance(echo),
                  ""]
            L += echo_table(echo, head) + [""]
            sizes = list(dict.fromkeys(c["size"] for c in echo["cells"]))
            L += ["All sizes and connection counts: " + ", ".join(
                f"[{size_label(sz)}]({rel_dir}/{echo_png(sz)})"
                for sz in sizes) + ".", ""]
    if doc.get("loop"):
        L += ["### Loop dispatch", "",
              f"This section alone: `{cmds['loop']}`. Median µs per operation; in brackets "
              "the ratio to reactor.Reactor (> 1: reactor is faster).", ""]
        L += loop_headline(doc["loop"]) + [""]
    return "\n".join(L)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("benchmarks", "results")
    with open(os.path.join(out, "results.json")) as f:
        d = json.load(f)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(build(d))
    if len(sys.argv) > 2:  # python -m benchmarks.report DIR README_SECTION.md
        with open(sys.argv[2], "w") as f:
            f.write(readme_section(d, os.path.relpath(out, ROOT)) + "\n")
