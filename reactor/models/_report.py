"""The runner's output: progress lines, Markdown tables, JSON and plots."""

from __future__ import annotations

import json
import os

from .driver import bad_exits, find

NAMES = {
    1: "blocking",
    2: "non-blocking",
    3: "multiplexing",
    4: "signal-driven",
    5: "asynchronous",
}


def progress_line(run: dict, done: int, total: int, elapsed: float) -> str:
    head = f"[{done:3}/{total:3} {elapsed:5.0f} s] {run['server']:13}"
    if "unavailable" in run:
        return f"{head} not available: {run['unavailable']}"
    what = f"1 + {run['idle']:5} idle" if run["idle"] else f"{run['connections']:5} conns"
    if "skipped" in run or "error" in run:
        return f"{head} {what}  {run.get('skipped') or run.get('error')}"
    line = (
        f"{head} {what} {run['msgs_per_s']:9,.0f} msg/s  p50 {run['p50_us']:8,.0f} us  "
        f"p99 {run['p99_us']:8,.0f} us  CPU/msg {run['user_us_per_msg']:5.1f} + "
        f"{run['sys_us_per_msg']:5.1f} us"
    )
    if run["served"] < run["connections"]:
        line += f"  served {run['served']} of {run['connections']}"
    if run["errors"]:
        line += f"  {run['errors']} ERRORS"
    if run["other_cpu_pct"] >= 10:
        line += f"  (others took {run['other_cpu_pct']:.0f} % of its CPU)"
    if "idle_cpu_pct" in run:
        line += (
            f"\n{'':26} then silent: server CPU {run['idle_cpu_pct']:.1f} % of its core "
            f"(others took {run['idle_other_pct']:.0f} %)"
        )
    return line


def _cell(row, fmt, *metrics):
    if row is None:
        return "-"
    if not all(m in row for m in metrics):
        # the whole reason is in the notes (notes())
        return f"({row['why'].partition(':')[0][:40]})" if "why" in row else "-"
    return fmt.format(*(row[m] for m in metrics))


def _table(result, header, columns, fmt, metrics):
    """A Markdown table: a row per server, a column per (connections, idle)."""
    summary, size = result["summary"], result["case"]["sizes"][0]
    lines = [
        f"| server (model) | {' | '.join(h for h, _, _ in columns)} |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, model in result["models"].items():
        cells = [
            _cell(find(summary, name, size, conns, idle), fmt, *metrics)
            for _, conns, idle in columns
        ]
        lines.append(f"| {name} ({model}) | {' | '.join(cells)} |")
    return f"### {header}\n\n" + "\n".join(lines)


def tables(result: dict) -> str:
    plan = result["case"]
    load = [(f"{n:,}", n, 0) for n in plan["connections"]]
    idle = [(f"1 + {n:,}", 1, n) for n in plan["active_idle"]]
    parts = [
        _table(
            result,
            "Messages per second (ping-pong, one message in flight per connection)",
            load,
            "{:,.0f}",
            ("msgs_per_s",),
        ),
        _table(
            result,
            "Server CPU per message, microseconds: user + system",
            load,
            "{:.1f} + {:.1f}",
            ("user_us_per_msg", "sys_us_per_msg"),
        ),
        _table(
            result,
            "Latency, microseconds: p50 / p99",
            load,
            "{:,.0f} / {:,.0f}",
            ("p50_us", "p99_us"),
        ),
        _table(
            result,
            "Connections that got any reply (of those opened)",
            load,
            "{:,.0f}",
            ("served",),
        ),
        _table(
            result,
            "Share of the server's CPU that other work took while it was "
            "measured, % (a shared machine: read the figures above with it)",
            load,
            "{:.0f} %",
            ("other_cpu_pct",),
        ),
        _table(
            result,
            f"Server CPU while {plan['idle_cpu_at']:,} connections sit silent, % of one core",
            [(f"{plan['idle_cpu_at']:,} idle", plan["idle_cpu_at"], 0)],
            "{:.1f} % (others: {:.0f} %)",
            ("idle_cpu_pct", "idle_other_pct"),
        ),
        _table(
            result,
            "1 active + N idle connections: messages per second of the active one",
            idle,
            "{:,.0f}",
            ("msgs_per_s",),
        ),
        _table(
            result,
            "1 active + N idle: server CPU per message, microseconds (user + system)",
            idle,
            "{:.1f} + {:.1f}",
            ("user_us_per_msg", "sys_us_per_msg"),
        ),
    ]
    return "\n\n".join(parts)


def notes(result: dict) -> list:
    out = list(result.get("notes", []))
    for name, why in result["unavailable"].items():
        out.append(f"{name}: not available: {why}")
    for name, bad in bad_exits(result).items():
        out.append(
            f"{name}: did not stop cleanly: "
            + "; ".join(
                f"exit {b['exit']}{', traceback' if b['traceback'] else ''} ({b['last_line']})"
                for b in bad
            )
        )
    whys: dict = {}  # a cell that has no figure says why here, once per server and reason
    for row in result["summary"]:
        if "why" in row and not all(m in row for m in ("msgs_per_s",)):
            whys.setdefault((row["server"], row["why"]), None)
    out += [f"{server}: {why}" for server, why in whys]
    if result.get("select_check"):
        out.append(result["select_check"])
    return out


def markdown(result: dict) -> str:
    m, plan = result["machine"], result["case"]
    head = [
        "# The five IO models, measured",
        "",
        f"`{result['command']}` at {m['git']}, {m['date']}: {m['cpu']} ({m['nproc']} CPUs), "
        f"Linux {m['kernel']}, {m['python']}, load average {m['loadavg']} at the end"
        f"{', ' + str(m['loadavg_at_start']) + ' at the start' if 'loadavg_at_start' in m else ''}"
        ".",
        "",
        f"Each server on CPU {result['cpus'][1]}, the compiled load client on CPU "
        f"{result['cpus'][0]}; {plan['sizes'][0]:,}-byte messages, every byte compared; "
        f"{plan['warmup']} s warm-up, {plan['duration']} s measured; medians of "
        f"{plan['repeat']} repetitions, servers started afresh each time in a rotated "
        "order.  Model numbers are the chapter's: 1 blocking, 2 non-blocking, "
        "3 multiplexing, 4 signal-driven, 5 asynchronous.",
        "",
        tables(result),
    ]
    extra = notes(result)
    if extra:
        head += ["", "Notes:", ""] + [f"- {line}" for line in extra]
    plots = [p for p in ("load.png", "idle.png") if p in result.get("plots", [])]
    if plots:
        head += [""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(head) + "\n"


def write(result: dict, out: str) -> list:
    """results.json, summary.md and the plots in `out`; the files written."""
    os.makedirs(out, exist_ok=True)
    result["notes"] = [n for n in result.get("notes", []) if not n.startswith("plots skipped")]
    result["plots"] = plots(result, out)
    written = [os.path.join(out, p) for p in result["plots"]]
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(markdown(result))
    return [os.path.join(out, "results.json"), os.path.join(out, "summary.md"), *written]


def plots(result: dict, out: str) -> list:
    """load.png and idle.png; [] (and a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result.setdefault("notes", []).append("plots skipped: matplotlib is not installed")
        return []
    summary, plan = result["summary"], result["case"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, model in result["models"].items():
        rows = [find(summary, name, plan["sizes"][0], n) for n in plan["connections"]]
        points = [(n, r) for n, r in zip(plan["connections"], rows) if r and "msgs_per_s" in r]
        style = dict(
            marker="o", label=f"{name} ({model})", linestyle="--" if model in (1, 2) else "-"
        )
        for ax, value in zip(
            axes,
            (
                lambda r: r["msgs_per_s"],
                lambda r: r.get("user_us_per_msg", 0) + r.get("sys_us_per_msg", 0),
                lambda r: r["p99_us"],
            ),
        ):
            if points:
                ax.plot([n for n, _ in points], [value(r) for _, r in points], **style)
    for ax, title in zip(
        axes, ("messages per second", "server CPU per message (us)", "p99 latency (us)")
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("connections")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"The five IO models: {result['command']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "load.png"), dpi=90)
    plt.close(fig)
    _idle_plot(plt, result, out)
    return ["load.png", "idle.png"]


def _idle_plot(plt, result, out):
    summary, plan = result["summary"], result["case"]
    size, at = plan["sizes"][0], plan["idle_cpu_at"]
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(result["models"])
    values = [(find(summary, n, size, at) or {}).get("idle_cpu_pct", 0.0) for n in names]
    others = [(find(summary, n, size, at) or {}).get("idle_other_pct", 0.0) for n in names]
    bars.barh(names, values, label="the server")
    bars.barh(names, others, left=values, color="lightgrey", label="other work on its CPU")
    bars.invert_yaxis()
    bars.legend(fontsize=8)
    bars.set_xlabel("% of one core")
    bars.set_title(f"server CPU, {at:,} silent connections")
    for name in names:
        rows = [(n, find(summary, name, size, 1, n)) for n in (0, *plan["active_idle"])]
        points = [(n, r["msgs_per_s"]) for n, r in rows if r and "msgs_per_s" in r]
        if points:
            lines.plot(*zip(*points), marker="o", label=name)
    lines.set_xscale("symlog", linthresh=10)
    lines.set_yscale("log")
    lines.set_xlabel("idle connections beside the active one")
    lines.set_title("1 active + N idle: messages per second")
    lines.grid(True, which="both", alpha=0.3)
    lines.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "idle.png"), dpi=90)
    plt.close(fig)


if __name__ == "__main__":  # python -m reactor.models._report DIR: summary and plots again
    import sys

    with open(os.path.join(sys.argv[1], "results.json")) as f:
        print("\n".join(write(json.load(f), sys.argv[1])))
