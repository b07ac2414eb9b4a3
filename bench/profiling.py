"""Where Roost's broker spends its time: py-spy on it during one scenario (fan-in QoS 0 unless
`bench/run.py --profile NAME` says another)."""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brokers
from scenarios import BY_NAME, loadgen_args

SAMPLE_RATE = 200  # Hz
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy_binary() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """'func (path/file.py:12)' -> 'path/file.py:func' (lines folded together)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['file']}:{m['func']}"


_LAYERS = (
    ("broker/mqtt/", "MQTT codec (broker/mqtt)"),
    ("broker/engine/", "engine: routing, sessions (broker/engine)"),
    ("broker/net/", "transport (broker/net)"),
    ("broker/", "rest of broker/"),
    ("asyncio/", "event loop and socket I/O (uvloop, C, under asyncio.Runner.run)"),
)


def _layer(path: str) -> str:
    return next(
        (label for prefix, label in _LAYERS if path.startswith(prefix)), "other (stdlib, runtime)"
    )


def analyse(raw: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's raw (collapsed) output."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    file_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        count = int(m["count"])
        frames = [_frame_name(f) for f in m["stack"].split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        file_counts[frames[-1].rsplit(":", 1)[0]] += count
        for name in set(frames):
            incl_counts[name] += count
    if not total:
        return {"samples": 0}

    def share(counter: collections.Counter[str], n: int) -> list[dict[str, Any]]:
        return [
            {"function": k, "samples": v, "share": round(v / total, 4)}
            for k, v in counter.most_common(n)
        ]

    layers: collections.Counter[str] = collections.Counter()
    for name, count in file_counts.items():
        layers[_layer(name)] += count
    return {
        "samples": total,
        "self_by_layer": share(layers, 10),
        "self": share(self_counts, top),
        "inclusive": share(incl_counts, top * 2),
        "self_by_file": share(file_counts, top),
    }


def profile_roost(
    ctx: dict[str, Any],
    opts: argparse.Namespace,
    run_loadgen: Callable[[Path, list[str], float], tuple[dict[str, Any], float]],
) -> dict[str, Any] | None:
    """One extra run of `opts.profile` against Roost with py-spy attached (not part of the
    medians)."""
    py_spy = py_spy_binary()
    if not py_spy:
        return None
    scenario = BY_NAME[opts.profile]
    if scenario.tls or scenario.platform:
        return {"error": f"{scenario.name}: only plain standalone scenarios are profiled"}
    warmup, duration = max(opts.warmup, 1.0), max(opts.duration, 3.0)
    # Roost as the scenario runs it: plain, or the first of its configurations (durable:
    # ack, none) that --brokers asked for.
    mine = [b for b in scenario.brokers if b.startswith(brokers.ROOST)] or [brokers.ROOST]
    name = next((b for b in mine if b in opts.broker_list), mine[0])
    broker = brokers.start(name, ctx["workdir"], ctx["python"], extra=scenario.broker_args)
    raw_path = ctx["workdir"] / "py-spy.txt"
    spy_out: dict[str, str] = {}
    try:
        args = [
            "--host",
            "127.0.0.1",
            "--port",
            str(broker.port),
            "--broker-pid",
            str(broker.pid),
            "--prefix",
            "bench-profile",
            *loadgen_args(scenario, False, warmup, duration),
        ]

        def spy() -> None:
            time.sleep(warmup)  # sample the measured part only
            cmd = [
                "taskset",
                "-c",
                brokers.LOADGEN_CORE,
                py_spy,
                "record",
                "--pid",
                str(broker.pid),
                "--duration",
                str(int(duration)),
                "--rate",
                str(SAMPLE_RATE),
                "--format",
                "raw",
                "--output",
                str(raw_path),
                "--nonblocking",
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
            spy_out["log"] = (out.stdout + out.stderr).strip()[-500:]

        thread = threading.Thread(target=spy, daemon=True)
        thread.start()
        result, _ = run_loadgen(ctx["loadgen"], args, scenario.timeout)
        thread.join(timeout=duration + 90)
    finally:
        brokers.stop(broker)
    if not raw_path.exists():
        return {"error": spy_out.get("log", "py-spy wrote nothing")}
    analysis = analyse(raw_path.read_text(errors="replace"))
    analysis.update(
        {
            "scenario": scenario.name,
            "broker": name,
            "rate_hz": SAMPLE_RATE,
            "seconds": int(duration),
            "mode": "py-spy record --nonblocking (idle samples excluded)",
            "throughput_during_profile": result.get("rate"),
            "broker_cpu": result.get("broker_cpu"),
            "py_spy_log": spy_out.get("log", ""),
        }
    )
    return analysis
