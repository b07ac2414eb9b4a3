"""Write docs/benchmarks.md and docs/benchmarks.png from one results file.

    .venv/bin/python bench/report.py bench/results/<run>.json

The "## ACL decisions" section of an existing docs/benchmarks.md and everything after it
(the platform benchmarks' sections, written by hand from their own runs) are carried over
unchanged.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokers import (  # noqa: E402
    ALL_BROKERS,
    MOSQUITTO,
    MOSQUITTO_ACL,
    MOSQUITTO_NODELAY,
    MOSQUITTO_PERSIST,
    ROOST,
    ROOST_ACK,
    ROOST_NONE,
    ROOST_PLATFORM,
)
from scenarios import FIGURES, GEN_CPU_LIMIT, goal_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
CHART = REPO / "docs" / "benchmarks.png"
ACL_HEADING = "## ACL decisions"
BUSY_MACHINE = 0.15  # cores used by other processes during a run, on average
LABELS = {
    ROOST: "Roost",
    MOSQUITTO: "Mosquitto (defaults)",
    MOSQUITTO_NODELAY: "Mosquitto (tcp_nodelay)",
    ROOST_ACK: "Roost --durability ack",
    ROOST_NONE: "Roost --durability none",
    MOSQUITTO_PERSIST: "Mosquitto (persistence true)",
    ROOST_PLATFORM: "Roost platform broker",
    MOSQUITTO_ACL: "Mosquitto (mTLS, identity as user name, ACL file)",
}
COLORS = {ROOST: "#c0392b", MOSQUITTO: "#2c3e50", MOSQUITTO_NODELAY: "#7f8c8d"}


def preserved_acl_section(text: str) -> str | None:
    """The '## ACL decisions' section and the hand-written ones after it, if present."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == ACL_HEADING:
            return "\n".join(lines[i:]).rstrip() + "\n"
    return None


def _fmt(value: float | None, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    v = value * scale
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(row: dict[str, Any], name: str) -> str:
    b = row["brokers"].get(name)
    if not b or not b["rounds"]:
        return "–"
    text = _fmt(b["median"], row["scale"])
    if b["invalid_rounds"]:
        text += f" ⚠{b['invalid_rounds']}"
    if name == row.get("best_mosquitto"):
        text = f"**{text}**"
    return text


def table(rows: list[dict[str, Any]], brokers: list[str]) -> str:
    head = [
        "Figure",
        "Unit",
        *[LABELS[b] for b in brokers],
        "Roost / best Mosquitto",
        "Goal",
        "Result",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    goals = {f.key: f for f in FIGURES}
    for row in rows:
        fig = goals[row["figure"]]
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        result = row["verdict"]
        if result == "miss":
            result = "**miss**"
        cells = [
            row["label"],
            row["unit"],
            *[_cell(row, b) for b in brokers],
            ratio,
            goal_text(fig),
            result,
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def chart(doc: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = {r["figure"]: r for r in doc["summary"]}
    brokers = [b for b in ALL_BROKERS if b in doc["options"]["brokers"]]
    panels = [
        (
            "Throughput (median, log scale)",
            ["fanin0", "fanin1", "fanout0", "pairs1", "alias"],
            True,
            "messages or deliveries / s",
        ),
        (
            "Latency at 5,000 msg/s (median, log scale)",
            ["lat0_p50", "lat0_p99", "lat0_p999", "lat1_p50", "lat1_p99", "lat1_p999"],
            True,
            "ms",
        ),
        ("Broker RSS per idle connection", ["rss_plain", "rss_tls"], False, "KiB"),
        ("Connection set-up rate (log scale)", ["rate_plain", "rate_tls"], True, "connections / s"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    for ax, (title, keys, log, unit) in zip(axes.flat, panels, strict=True):
        keys = [k for k in keys if k in rows]
        width = 0.8 / max(len(brokers), 1)
        for i, b in enumerate(brokers):
            vals = []
            for k in keys:
                m = rows[k]["brokers"].get(b, {}).get("median")
                vals.append((m or 0) * rows[k]["scale"])
            xs = [j + (i - (len(brokers) - 1) / 2) * width for j in range(len(keys))]
            ax.bar(xs, vals, width, label=LABELS[b], color=COLORS[b])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(
            [_short(rows[k]["label"]) for k in keys], rotation=20, ha="right", fontsize=8
        )
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(
        f"Roost vs Mosquitto, {doc['started_utc']} ({doc['machine']['nproc']} cores, {doc['machine']['cpu_model']})",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _short(label: str) -> str:
    return (
        label.replace(" @5k/s", "")
        .replace("Latency ", "")
        .replace(", MQTT 5 topic aliases", " MQTT 5 alias")
    )


def _interference(doc: dict[str, Any]) -> tuple[float | None, float]:
    loads = [r["other_load"] for r in doc["runs"] if r.get("other_load") is not None]
    avg = [doc["load_average"]["before"][0], doc["load_average"]["after"][0]] + [
        r.get("loadavg", 0) for r in doc["runs"]
    ]
    return (statistics.median(loads) if loads else None), max(avg)


def render(doc: dict[str, Any], results_file: Path, acl: str | None) -> str:
    m, v, o = doc["machine"], doc["versions"], doc["options"]
    brokers = [b for b in ALL_BROKERS if b in o["brokers"]]
    other, peak_load = _interference(doc)
    noisy = other is not None and other > BUSY_MACHINE
    rel = results_file.relative_to(REPO) if results_file.is_relative_to(REPO) else results_file
    lines = [
        "# Broker benchmarks: Roost next to Mosquitto",
        "",
        "Generated by `bench/run.py` (`make bench`); every number below comes from the run in",
        f"`{rel}`. Do not edit by hand: run `make bench` again (the `## ACL decisions` section and",
        "the ones after it are kept as they are).",
        "",
    ]
    if o["quick"]:
        lines += [
            "> **Smoke run (`--quick`)**: one short round, smaller counts. Not a measurement.",
            "",
        ]
    if noisy:
        lines += [
            f"> **Noisy machine**: other processes used a median of {other:.2f} cores during the runs",
            f"> (load average up to {peak_load:.2f}) on a {m['nproc']}-core machine. Ratios are",
            "> indicative only; rerun on a quiet machine before drawing conclusions.",
            "",
        ]
    lines += [
        "## Machine and versions",
        "",
        f"- Run: {doc['started_utc']}, {doc['elapsed_s']:.0f} s, `{doc['command'].strip()}`",
        f"- CPU: {m['cpu_model']}, {m['nproc']} cores (`nproc`), {m['memory_gib']} GiB; kernel {m['kernel']}; {m['os']}",
        f"- Load average before / after: {doc['load_average']['before'][0]:.2f} / {doc['load_average']['after'][0]:.2f};"
        f" other processes' CPU during runs (median): {'–' if other is None else f'{other:.2f} cores'}",
        f"- Python {v['python']}; Mosquitto {v['mosquitto']}; Roost {v['roost']}; {v['openssl']}; {v['gcc']}",
        "",
        "## Method",
        "",
        f"- Each scenario runs against {', '.join(LABELS[b] for b in brokers)}, in that order, round after",
        f"  round ({o['rounds']} round{'s' if o['rounds'] != 1 else ''}); every run starts a fresh broker on its own",
        "  loopback port. The table shows medians; the ratio is Roost against the better of the two",
        "  Mosquitto configurations for that figure (in **bold**).",
        "- Roost: `python -m broker --bind 127.0.0.1:PORT --anonymous` (mTLS: `--bind tls://…",
        "  --tls-cert --tls-key --tls-ca`). Mosquitto: a generated config with `allow_anonymous true`,",
        "  `persistence false`, `max_connections -1`, a listener on 127.0.0.1 only, and",
        "  `set_tcp_nodelay false` (its default) or `true`; mTLS with `require_certificate true`.",
        "- The broker is pinned to core 0 (`taskset -c 0`), the load generator to core 1.",
        "- Load generator: `bench/loadgen.c` (C, epoll, OpenSSL), built with `gcc -O2`. Payloads carry",
        "  publisher id, sequence number and send time: lost, duplicated and out-of-order messages",
        "  are counted while measuring (any at QoS 1 invalidates the run) and latency is end to end.",
        "  Maximum-rate scenarios keep an end-to-end window per publisher (messages sent but not yet",
        "  received), so throughput is what subscribers receive, not what piles up in the broker.",
        f"  A run where the generator uses ≥{GEN_CPU_LIMIT:.0%} of its core is flagged invalid (⚠n: n invalid rounds).",
        f"- Throughput runs: {o['warmup_s']:g} s warm-up, then {o['duration_s']:g} s measured. Payload 64 bytes.",
        "",
        "| Scenario | What | Load generator arguments |",
        "|---|---|---|",
    ]
    for name, s in doc["scenarios"].items():
        lines.append(f"| `{name}` | {s['title']} | `{' '.join(s['loadgen'])}` |")
    main = [r for r in doc["summary"] if r.get("group", "main") == "main"]
    efficiency = [r for r in doc["summary"] if r.get("group") == "efficiency"]
    lines += ["", "## Results", "", table(main, brokers), ""]
    if efficiency:
        lines += [
            "Throughput per CPU-second the broker actually got (rate ÷ the broker's CPU share while",
            "measuring): steadier than the raw rates when other processes compete for core 0.",
            "",
            table(efficiency, brokers),
            "",
        ]
    lines += ["![Throughput, latency and connection figures](benchmarks.png)", ""]
    lines += _comparisons(doc.get("comparisons") or [])
    lines += _notes(doc)
    lines += _profile(doc.get("profile"))
    if acl:
        lines += [acl.rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _comparisons(rows: list[dict[str, Any]]) -> list[str]:
    """Durability, slow consumer and platform figures: one configuration against another."""
    if not rows:
        return []
    from run import comparison_text

    out = [
        "## Durability, a stuck subscriber, the platform over mTLS",
        "",
        "Ratios of medians between two configurations (`bench/scenarios.py`, `COMPARISONS`):",
        "Roost `--persist DIR --durability ack|none` and Mosquitto with `persistence true`",
        "(which writes at autosave and exit, not before acknowledging; `max_queued_messages 0`,",
        "as otherwise it drops what its subscriber has not taken yet), all with persistent",
        "sessions (`--persistent`: clean session off, fixed client ids); the same broker with",
        "and without one `#` subscriber that never reads its socket; the platform broker",
        "(`manage.py runbroker`: one certificate per device, client id = device, ACL rules,",
        "tenant mountpoint) against Mosquitto with mTLS, `require_certificate`,",
        "`use_identity_as_username` and an ACL file (`bench/platform_broker.py`).",
        "",
        "| Figure | Value | Numerator | Denominator | Goal | Result |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        value, goal, result = comparison_text(row)
        num = f"{LABELS.get(row['num'][1], row['num'][1])}: {_fmt(row['numerator'], row['scale'] if not row['den'] else 1)}"
        den = (
            f"{LABELS.get(row['den'][1], row['den'][1])}: {_fmt(row['denominator'])}"
            if row["den"]
            else ""
        )
        out.append(f"| {row['label']} | {value} | {num} | {den} | {goal} | {result} |")
    return [*out, ""]


def _notes(doc: dict[str, Any]) -> list[str]:
    out = ["## Notes on this run", ""]
    invalid = [r for r in doc["runs"] if r.get("problems")]
    for r in invalid:
        out.append(
            f"- ⚠ `{r['scenario']}` round {r['round']}, {LABELS.get(r['broker'], r['broker'])}: {'; '.join(r['problems'])}"
        )
    drops: dict[tuple[str, str], int] = {}
    for r in doc["runs"]:
        if r.get("broker_dropped_notices"):
            drops.setdefault((r["scenario"], r["broker"]), 0)
            drops[(r["scenario"], r["broker"])] += r["result"].get("lost", 0)
    for (scen, b), lost in drops.items():
        args = doc["scenarios"].get(scen, {}).get("loadgen", [])
        bound = ""
        if "--window" in args and "--pubs" in args and "--rate" not in args:
            most = int(args[args.index("--window") + 1]) * int(args[args.index("--pubs") + 1])
            bound = f"; the load generator's windows allow {most} messages outstanding"
        out.append(
            f'- {LABELS.get(b, b)} logged "Outgoing messages are being dropped" in `{scen}` '
            f"({lost} messages lost over all rounds{bound})."
        )
    resets = [r for r in doc["runs"] if r["result"].get("window_resets")]
    if resets:
        by: dict[tuple[str, str], list[int]] = {}
        for r in resets:
            by.setdefault((r["scenario"], r["broker"]), []).append(r["result"]["window_resets"])
        parts = [f"`{s}` {LABELS.get(b, b)}: {sum(v)}" for (s, b), v in by.items()]
        out.append(
            "- A publisher whose window did not move for 500 ms wrote its outstanding messages off and went "
            "on (a stall or a drop in the broker). Times this happened, all rounds: "
            + "; ".join(parts)
            + "."
        )
    gen = [r["result"].get("gen_cpu", 0) for r in doc["runs"] if "gen_cpu" in r["result"]]
    if gen:
        out.append(
            f"- Load generator CPU: median {statistics.median(gen):.0%}, highest {max(gen):.0%} of its core."
        )
    if len(out) == 2:
        out.append("- Every run was valid.")
    return [*out, ""]


def _profile(profile: dict[str, Any] | None) -> list[str]:
    out = ["## Where Roost's time goes", ""]
    if not profile or not profile.get("samples"):
        reason = (profile or {}).get(
            "error", "no profile was taken in this run (`--no-profile`, or Roost not run)"
        )
        return [*out, f"No profile: {reason}", ""]
    out += [
        f"py-spy sampled the broker at {profile['rate_hz']} Hz for {profile['seconds']} s during an extra",
        f"{profile.get('scenario', 'fanin-qos0')} run ({_fmt(profile.get('throughput_during_profile'))}/s while sampled,",
        f"broker CPU {profile.get('broker_cpu', 0):.0%}); {profile['samples']} samples; {profile['mode']}.",
        "",
        "Self time by layer:",
        "",
        "| Layer | Self |",
        "|---|---|",
        *[f"| {e['function']} | {e['share']:.1%} |" for e in profile.get("self_by_layer", [])],
        "",
        "Self time (the function on top of the stack), top entries:",
        "",
        "| Function | Self |",
        "|---|---|",
    ]
    out += [f"| `{e['function']}` | {e['share']:.1%} |" for e in profile["self"][:15]]
    out += [
        "",
        "Inclusive time (the function anywhere on the stack), Roost's own code:",
        "",
        "| Function | Inclusive |",
        "|---|---|",
    ]
    mine = [e for e in profile["inclusive"] if e["function"].startswith("broker/")]
    out += [f"| `{e['function']}` | {e['share']:.1%} |" for e in mine[:15]]
    out += ["", "Self time by file:", "", "| File | Self |", "|---|---|"]
    out += [f"| `{e['function']}` | {e['share']:.1%} |" for e in profile["self_by_file"][:10]]
    return [*out, ""]


def write_docs(doc: dict[str, Any], results_file: Path) -> list[Path]:
    existing = DOC.read_text() if DOC.exists() else ""
    acl = preserved_acl_section(existing)
    DOC.parent.mkdir(exist_ok=True)
    written = []
    if chart(doc, CHART):
        written.append(CHART)
    DOC.write_text(render(doc, results_file, acl))
    written.insert(0, DOC)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0]).resolve()
    for p in write_docs(json.loads(path.read_text()), path):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
