"""PNG plots of a suite run (matplotlib, off-screen).

    python -m benchmarks.plots DIR     # redraw DIR/*.png from DIR/results.json

``scaling.png``: select(0) with 1 ready fd as registered fds grow, per
backend and implementation; ``loop.png``: loop dispatch; ``<case>_<size>.png``
per echo-driver case and message size: msgs/s, latency and server CPU per
message by server and connection count; ``soak.png``: the server's RSS.
"""

from __future__ import annotations

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.driver import CASES  # noqa: E402
from benchmarks.report import machine_line  # noqa: E402
from benchmarks.selectors_bench import cases  # noqa: E402

COLORS = {"epoll": "tab:blue", "poll": "tab:orange", "select": "tab:green"}
STYLES = {
    "reactor": dict(ls="-", marker="o"),
    "stdlib": dict(ls="--", marker="s"),
    "kernel": dict(ls=":", marker="."),
}


def color(k: int):
    """tab20's darker shades first, then the lighter ones."""
    return plt.get_cmap("tab20")(2 * k % 20 + k // 10 % 2)


def _save(fig, doc, path) -> None:
    fig.text(
        0.01,
        0.005,
        f"{doc['meta']['command']}  |  {machine_line(doc['meta'])}",
        fontsize=7,
        color="0.35",
    )
    fig.tight_layout(rect=(0, 0.025, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scaling(doc, path) -> None:
    benchmarks = doc["selectors"]["benchmarks"]
    fig, ax = plt.subplots(figsize=(9, 6))
    for backend in COLORS:
        for impl, style in STYLES.items():
            points = sorted(
                (n, benchmarks[name][impl])
                for name, op, b, n, ready in cases()
                if b == backend and ready == 1 and impl in benchmarks.get(name, {})
            )
            if points:
                ax.errorbar(
                    [n for n, _ in points],
                    [v["median"] * 1e6 for _, v in points],
                    yerr=[v["mad"] * 1e6 for _, v in points],
                    color=COLORS[backend],
                    label=f"{impl} {backend}",
                    capsize=2,
                    **style,
                )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="registered fds (N), one of them ready",
        ylabel="one select(0) (µs, log)",
        title="select(0) with 1 ready fd: select and poll "
        "scan all N, epoll pays for the ready one\n(median; bars: median absolute deviation)",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    _save(fig, doc, path)


def loop(doc, path) -> None:
    benchmarks = doc["loop"]["benchmarks"]
    fig, axes = plt.subplots(
        1, len(benchmarks), figsize=(4.2 * len(benchmarks), 4.6), squeeze=False
    )
    for ax, (name, by_impl) in zip(axes[0], benchmarks.items()):
        impls = list(by_impl)
        ax.bar(
            impls,
            [by_impl[i]["median"] * 1e6 for i in impls],
            yerr=[by_impl[i]["mad"] * 1e6 for i in impls],
            capsize=3,
            color=[f"C{k}" for k in range(len(impls))],
        )
        ax.set_title(name)
        ax.set_ylabel("µs per operation (median; bars: MAD)")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    _save(fig, doc, path)


def echo(doc, section, size, path) -> None:
    """msgs/s, latency and server CPU per message, per server and connection count."""
    case = doc[section]
    conns = case["case"]["connections"]
    rows = {
        (r["server"], r["connections"]): r
        for r in case["summary"]
        if r["size"] == size and not r["idle"] and r["runs"]
    }
    servers = [s for s in case["case"]["servers"] if any((s, c) in rows for c in conns)]
    fig, axes = plt.subplots(
        3, 1, figsize=(max(8, 0.9 * len(servers) * len(conns)), 10), sharex=True
    )
    width = 0.8 / max(1, len(servers))
    for k, server in enumerate(servers):
        got = [(i, rows[server, c]) for i, c in enumerate(conns) if (server, c) in rows]
        xs = [i + (k - (len(servers) - 1) / 2) * width for i, _ in got]
        rs = [r for _, r in got]
        lo_hi = [
            [r["msgs_per_s"] - r["msgs_per_s_range"][0] for r in rs],
            [r["msgs_per_s_range"][1] - r["msgs_per_s"] for r in rs],
        ]
        axes[0].bar(
            xs,
            [r["msgs_per_s"] for r in rs],
            width,
            yerr=lo_hi,
            capsize=2,
            color=color(k),
            label=server,
        )
        axes[1].bar(xs, [r["p99_us"] for r in rs], width, color=color(k), alpha=0.35)
        axes[1].bar(xs, [r["p50_us"] for r in rs], width, color=color(k))
        user = [r["user_us_per_msg"] for r in rs]
        axes[2].bar(xs, user, width, color=color(k))
        axes[2].bar(
            xs, [r["sys_us_per_msg"] for r in rs], width, bottom=user, color=color(k), alpha=0.35
        )
    axes[0].set_ylabel("messages per second\n(median; bars: min-max)")
    axes[1].set(ylabel="round trip (µs, log)\nsolid p50, light p99", yscale="log")
    axes[2].set_ylabel("server CPU per message (µs)\nsolid user, light system")
    axes[2].set_xticks(range(len(conns)), [f"{c} connection{'s' * (c != 1)}" for c in conns])
    axes[0].set_title(
        f"{section}, {size:,}-byte messages: median of {case['case']['repeat']} "
        f"run(s) of {case['case']['duration']:g} s per server"
    )
    axes[0].legend(fontsize=8, ncol=4)
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    _save(fig, doc, path)


def memory(doc, section, path) -> None:
    """The soak: the server's RSS over the run."""
    run = next(r for r in doc[section]["runs"] if "rss_samples" in r)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot([t for t, _ in run["rss_samples"]], [b / 2**20 for _, b in run["rss_samples"]])
    ax.set(
        xlabel="seconds",
        ylabel="server RSS (MiB)",
        ylim=(0, None),
        title=f"{section}: {run['server']}, {run['connections']:,} connections x "
        f"{run['size']:,} B, {run['client']['messages']:,} messages",
    )
    ax.grid(True, alpha=0.3)
    _save(fig, doc, path)


def draw_all(doc, out_dir) -> dict:
    """Every figure the results have data for: {key: file name}."""
    files = {}
    if doc.get("selectors", {}).get("benchmarks"):
        files["scaling"] = "scaling.png"
        scaling(doc, os.path.join(out_dir, "scaling.png"))
    if doc.get("loop", {}).get("benchmarks"):
        files["loop"] = "loop.png"
        loop(doc, os.path.join(out_dir, "loop.png"))
    for section in (s for s in CASES if s in doc and any(r["runs"] for r in doc[s]["summary"])):
        if doc[section]["case"]["memory_check"]:
            files[section] = f"{section}.png"
            memory(doc, section, os.path.join(out_dir, files[section]))
            continue
        for size in doc[section]["case"]["sizes"]:
            key = f"{section}_{size // 1024}KiB" if size % 1024 == 0 else f"{section}_{size}B"
            files[key] = f"{key}.png"
            echo(doc, section, size, os.path.join(out_dir, files[key]))
    return files


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("benchmarks", "results")
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for name in draw_all(results, out).values():
        print(os.path.join(out, name))
