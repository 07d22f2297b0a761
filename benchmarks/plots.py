"""PNG plots of a suite run (matplotlib, drawn off-screen).

    python -m benchmarks.plots DIR     # redraw DIR/*.png from DIR/results.json

Each function takes the suite's results document and a path, and draws one
figure: the scaling of select(0) (log-log), one echo figure per message
size, and the loop dispatch figure.
"""

from __future__ import annotations

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import StrMethodFormatter  # noqa: E402

from benchmarks._common import echo_png, size_label  # noqa: E402

BACKEND_COLORS = {"Epoll": "tab:blue", "Poll": "tab:orange", "Select": "tab:green"}
FOOTER_SIZE = 7


def _footer(fig, doc, command):
    m = doc["meta"]
    fig.text(0.01, 0.005, f"{command}   |   {m['cpu_model']}, {m['nproc']} cores, Linux "
             f"{m['kernel']}, Python {m['python']}, git {m['git']}, {m['date']}",
             fontsize=FOOTER_SIZE, color="0.35", ha="left", va="bottom")


def scaling_series(selectors_doc) -> dict:
    """backend -> {"ours"|"stdlib"|"kernel": [(N, median ns, q1 ns, q3 ns)]},
    from the select(0) cases with one ready fd."""
    out: dict = {}
    for r in selectors_doc["results"]:
        if r["case"] != "select(0)" or r["ready"] != 1:
            continue
        series = out.setdefault(r["backend"], {"ours": [], "stdlib": [], "kernel": []})
        for side, key in (("ours", "ours_ns"), ("stdlib", "stdlib_ns"), ("kernel", "floor_ns")):
            s = r.get(key)
            if s:
                series[side].append((r["n"], s["median"], s["q1"], s["q3"]))
    for series in out.values():
        for pts in series.values():
            pts.sort()
    return out


def plot_scaling(doc, path, command) -> None:
    series = scaling_series(doc["selectors"])
    fig, ax = plt.subplots(figsize=(9, 6.2))
    styles = {"ours": dict(ls="-", marker="o", lw=2.0, label="reactor {b}Selector"),
              "stdlib": dict(ls="--", marker="s", lw=1.5, label="stdlib {b}Selector"),
              "kernel": dict(ls=":", marker=".", lw=1.2, alpha=0.8,
                             label="kernel floor: {op} from C")}
    ops = {"Epoll": "epoll_wait", "Poll": "poll", "Select": "select"}
    for backend in ("Select", "Poll", "Epoll"):
        for side in ("ours", "stdlib", "kernel"):
            pts = series.get(backend, {}).get(side)
            if not pts:
                continue
            n = [p[0] for p in pts]
            us = [p[1] / 1e3 for p in pts]
            err = [[(p[1] - p[2]) / 1e3 for p in pts], [(p[3] - p[1]) / 1e3 for p in pts]]
            st = dict(styles[side])
            label = st.pop("label").format(b=backend, op=ops[backend])
            ax.errorbar(n, us, yerr=err, color=BACKEND_COLORS[backend], label=label,
                        capsize=2, markersize=5, **st)
    std_select = series.get("Select", {}).get("stdlib")
    if std_select:
        last = std_select[-1]
        ax.annotate("stdlib select: no fd >= 1024\n(ValueError)", xy=(last[0], last[1] / 1e3),
                    xytext=(12, -28), textcoords="offset points", fontsize=8,
                    color=BACKEND_COLORS["Select"],
                    arrowprops=dict(arrowstyle="->", color=BACKEND_COLORS["Select"]))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("registered fds (N), one of them ready")
    ax.set_ylabel("time of one select(0) call (µs, log scale)")
    ax.set_title("select(0) with 1 ready fd as idle fds grow: select and poll scan all N,\n"
                 "epoll pays only for the ready one (median; bars: interquartile range)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncol=1)
    _footer(fig, doc, command)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_echo(doc, size, path, command) -> None:
    """One message size: msgs/s, p50/p99 latency and server CPU per message
    (user + system), per server, grouped by connection count."""
    echo = doc["echo"]
    cells = [c for c in echo["cells"] if c["size"] == size]
    servers = [s for s in echo["servers"] if any(s in c["summary"] for c in cells)]
    conns = [c["connections"] for c in cells]
    fig, axes = plt.subplots(3, 1, figsize=(11, 11), sharex=True)
    width = 0.8 / max(1, len(servers))
    cmap = plt.get_cmap("tab10")
    for si, name in enumerate(servers):
        color = cmap(si % 10)
        xs, rate, rate_err, p50, p99, user, sys_ = [], [], [[], []], [], [], [], []
        for ci, cell in enumerate(cells):
            s = cell["summary"].get(name)
            if not s:
                continue
            xs.append(ci + (si - (len(servers) - 1) / 2) * width)
            m = s["msgs_per_s"]
            rate.append(m["median"])
            rate_err[0].append(m["median"] - m["min"])
            rate_err[1].append(m["max"] - m["median"])
            p50.append(s["p50_us"]["median"])
            p99.append(s["p99_us"]["median"])
            user.append(s["user_us_per_msg"]["median"])
            sys_.append(s["sys_us_per_msg"]["median"])
        axes[0].bar(xs, rate, width, yerr=rate_err, capsize=2, color=color, label=name)
        axes[1].bar(xs, p99, width, color=color, alpha=0.35)
        axes[1].bar(xs, p50, width, color=color)
        axes[2].bar(xs, user, width, color=color)
        axes[2].bar(xs, sys_, width, bottom=user, color=color, alpha=0.35)
    axes[0].set_ylabel("messages per second\n(median; bars: min-max)")
    axes[0].yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes[1].set_ylabel("round-trip latency (µs, log)\nsolid p50, light p99")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("server CPU per message (µs)\nsolid user, light system")
    axes[2].set_xticks(range(len(cells)))
    axes[2].set_xticklabels([f"{c} connection{'s' if c > 1 else ''}" for c in conns])
    axes[2].set_xlabel("concurrent connections (ping-pong, one message in flight each)")
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4, loc="upper left")
    cfg = echo["config"]
    axes[0].set_title(f"Echo, {size_label(size)} messages: server pinned to CPU "
                      f"{echo['meta']['server_cpu']}, compiled client on CPU "
                      f"{echo['meta']['client_cpu']}; {cfg['warmup']:g} s warm-up + "
                      f"{cfg['duration']:g} s per run")
    _footer(fig, doc, command)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_loop(doc, path, command) -> None:
    loop = doc["loop"]
    benches = list(loop["results"])
    fig, axes = plt.subplots(1, len(benches), figsize=(4.2 * len(benches), 4.6))
    if len(benches) == 1:
        axes = [axes]
    cmap = plt.get_cmap("tab10")
    for ax, bench in zip(axes, benches):
        impls = list(loop["results"][bench])
        med = [loop["results"][bench][i]["ns"]["median"] / 1e3 for i in impls]
        err = [[(loop["results"][bench][i]["ns"]["median"] - loop["results"][bench][i]["ns"]["q1"])
                / 1e3 for i in impls],
               [(loop["results"][bench][i]["ns"]["q3"] - loop["results"][bench][i]["ns"]["median"])
                / 1e3 for i in impls]]
        ax.bar(range(len(impls)), med, yerr=err, capsize=3,
               color=[cmap(k % 10) for k in range(len(impls))])
        ax.set_xticks(range(len(impls)))
        ax.set_xticklabels(impls, rotation=20, ha="right", fontsize=8)
        unit = loop["benches"][bench].split(": ", 1)[1]
        ax.set_ylabel(f"µs, {unit}\n(median; bars: interquartile range)", fontsize=9)
        ax.set_title(f"{bench} (N={loop['config']['counts'][bench]:,})\n"
                     f"{loop['benches'][bench].split(':')[0]}", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    for why in loop.get("skipped", {}).values():
        fig.text(0.5, 0.06, f"uvloop: {why}", ha="center", fontsize=8, color="firebrick")
    _footer(fig, doc, command)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_all(doc, out_dir, command) -> dict:
    """Every figure the document has data for; name -> path."""
    files = {}
    if doc.get("selectors"):
        files["scaling"] = os.path.join(out_dir, "scaling.png")
        plot_scaling(doc, files["scaling"], command)
    if doc.get("echo"):
        for size in dict.fromkeys(c["size"] for c in doc["echo"]["cells"]):
            name = echo_png(size)
            files[name[:-4]] = os.path.join(out_dir, name)
            plot_echo(doc, size, files[name[:-4]], command)
    if doc.get("loop"):
        files["loop"] = os.path.join(out_dir, "loop.png")
        plot_loop(doc, files["loop"], command)
    return files


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("benchmarks", "results")
    with open(os.path.join(out, "results.json")) as f:
        d = json.load(f)
    for p in draw_all(d, out, d["meta"]["command"]).values():
        print(p)
