"""Roost's broker side by side with Mosquitto: `make bench` runs this.

    .venv/bin/python bench/run.py                 # every scenario, 3 rounds (under 15 minutes)
    .venv/bin/python bench/run.py --quick         # smoke run: 1 round, short and small
    .venv/bin/python bench/run.py --scenarios fanin-qos0,latency-qos1 --rounds 5
    .venv/bin/python bench/run.py --scenarios durable-fanin-qos1 --brokers roost-ack \
        --rounds 1 --profile durable-fanin-qos1   # where Roost's time goes in one scenario

Each scenario runs against Roost standalone and Mosquitto (its defaults, and
with set_tcp_nodelay), alternating A B A B for every round, each broker fresh
on its own loopback port and pinned to core 0; the C load generator runs on
core 1. Results go to bench/results/<UTC time>.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
import profiling  # noqa: E402
from scenarios import (  # noqa: E402
    BY_NAME,
    COMPARISONS,
    FIGURES,
    PLATFORM_DEVICES,
    SCENARIOS,
    Scenario,
    dig,
    loadgen_args,
    problems,
    verdict,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
BUILD = BENCH / ".build"
MOSQUITTO_DROP_LINE = "Outgoing messages are being dropped"

_live_brokers: list[brokers.RunningBroker] = []
_live_loadgens: list[subprocess.Popen[bytes]] = []


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ setup


def build_loadgen() -> Path:
    """Compile bench/loadgen.c with the system compiler, once per source version."""
    brokers.ensure_build_tools()
    source = BENCH / "loadgen.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = BUILD / f"loadgen-{digest}"
    if not binary.exists():
        BUILD.mkdir(exist_ok=True)
        cmd = [
            "gcc",
            "-O2",
            "-Wall",
            "-Wextra",
            "-o",
            str(binary),
            str(source),
            "-lssl",
            "-lcrypto",
            "-lm",
        ]
        log(" ".join(cmd))
        subprocess.run(cmd, check=True)
    return binary


def require_bench_extra() -> None:
    """The chart and the profile need the project's `bench` extra (installed by `make bench`)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None or not profiling.py_spy_binary():
        sys.exit("bench: matplotlib and py-spy are missing; run `make bench` or "
                 "`pip install -e '.[bench]'` (or pass --no-docs --no-profile)")


FD_WANTED = 32768  # 10,000 idle connections plus the broker's and generator's own files


def raise_fd_limit() -> int:
    """Lift RLIMIT_NOFILE (inherited by the brokers and the load generator)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FD_WANTED:
        # Raising the hard limit needs root (CAP_SYS_RESOURCE); otherwise keep what we have.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (FD_WANTED, FD_WANTED))
            return FD_WANTED
    target = FD_WANTED if hard == resource.RLIM_INFINITY else hard
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": _os_name(),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def roost_revision() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else ""

    rev = git("rev-parse", "--short", "HEAD") or "no commit yet"
    if git("status", "--porcelain", "--", "broker"):
        rev += " + uncommitted changes in broker/"
    return rev


def system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def process_status_kib(pid: int, key: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


# ------------------------------------------------------------------ runs


def run_loadgen(binary: Path, args: list[str], timeout: float) -> tuple[dict[str, Any], float]:
    """Run the load generator on core 1; returns its JSON and its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        ["taskset", "-c", brokers.LOADGEN_CORE, str(binary), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _live_loadgens.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"errors": 1, "first_error": f"load generator timed out after {timeout:.0f} s"}, 0.0
    finally:
        _live_loadgens.remove(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = out.decode(errors="replace").strip()
    try:
        result: dict[str, Any] = json.loads(text.splitlines()[-1]) if text else {}
    except json.JSONDecodeError:
        result = {}
    if not result:
        tail = err.decode(errors="replace").strip()[-500:]
        result = {
            "errors": 1,
            "first_error": f"no result from the load generator (exit {proc.returncode}): {tail}",
        }
    return result, cpu


def run_once(
    scenario: Scenario,
    broker_name: str,
    round_no: int,
    opts: argparse.Namespace,
    ctx: dict[str, Any],
) -> dict[str, Any]:
    record: dict[str, Any] = {"scenario": scenario.name, "broker": broker_name, "round": round_no}
    platform = ctx["platform"] if scenario.platform else None
    tls = platform.tls if platform else ctx["pki"] if scenario.tls else None
    try:
        if broker_name == brokers.ROOST_PLATFORM:
            import platform_broker

            broker = platform_broker.start(platform, ctx["workdir"], ctx["python"])
        else:
            roost = brokers.family(broker_name) == brokers.ROOST
            broker = brokers.start(
                broker_name,
                ctx["workdir"],
                ctx["python"],
                tls=tls,
                extra=scenario.broker_args if roost else (),
                acl_file=platform.acl_file if platform else None,
            )
    except brokers.BrokerError as exc:
        record["result"] = {"errors": 1, "first_error": f"broker did not start: {exc}"}
        record["problems"] = [record["result"]["first_error"][:300]]
        return record
    _live_brokers.append(broker)
    try:
        args = [
            "--host",
            "127.0.0.1",
            "--port",
            str(broker.port),
            "--broker-pid",
            str(broker.pid),
            "--prefix",
            f"bench-{scenario.name}-{round_no}",
            *loadgen_args(scenario, opts.quick, opts.warmup, opts.duration),
        ]
        if platform:
            args += ["--ca", str(tls.ca), "--cert-dir", str(platform.cert_dir)]
        elif tls:
            args += ["--ca", str(tls.ca), "--certs", str(tls.client_bundle)]
        busy0, broker0, self0, t0 = (
            system_busy_seconds(),
            process_cpu_seconds(broker.pid),
            time.process_time(),
            time.monotonic(),
        )
        result, gen_cpu_s = run_loadgen(ctx["loadgen"], args, scenario.timeout)
        wall = time.monotonic() - t0
        broker_cpu_s = process_cpu_seconds(broker.pid) - broker0
        other = (
            system_busy_seconds() - busy0 - broker_cpu_s - gen_cpu_s - (time.process_time() - self0)
        )
        record["other_load"] = round(max(other, 0.0) / wall, 3) if wall > 0 else None
        record["broker_peak_rss_kib"] = process_status_kib(broker.pid, "VmHWM")
        if scenario.read_drops:
            result["drops"] = sys_drops(broker.port)
        if broker.proc.poll() is not None:
            result["errors"] = result.get("errors", 0) + 1
            result["first_error"] = (
                f"broker exited during the run ({broker.proc.returncode}): {broker.log_tail(5)}"
            )
        if brokers.family(broker_name) != brokers.ROOST:
            record["broker_dropped_notices"] = broker.log_count(MOSQUITTO_DROP_LINE)
        else:
            record["broker_warnings"] = broker.log_count(" WARNING ") + broker.log_count(" ERROR ")
        record["result"] = result
        record["problems"] = problems(scenario, result)
    finally:
        brokers.stop(broker)
        _live_brokers.remove(broker)
    return record


def sys_drops(port: int, seconds: float = 2.5) -> dict[str, int]:
    """The broker's dropped-message counters from $SYS, read by a plain MQTT 3.1.1 client.

    Roost: $SYS/broker/messages/dropped[/REASON] (refreshed every --sys-interval);
    Mosquitto: $SYS/broker/publish/messages/dropped. `total` is the largest of them.
    """
    import socket

    def string(s: str) -> bytes:
        return len(s.encode()).to_bytes(2, "big") + s.encode()

    def packet(kind: int, body: bytes) -> bytes:
        n, length = len(body), b""
        while True:
            n, digit = divmod(n, 128)
            length += bytes([digit | (0x80 if n else 0)])
            if not n:
                return bytes([kind]) + length + body

    found: dict[str, int] = {}
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(packet(0x10, string("MQTT") + b"\x04\x02\x00\x3c" + string("bench-sys")))
            filters = ("$SYS/broker/messages/dropped/#", "$SYS/broker/publish/messages/dropped")
            sock.sendall(packet(0x82, b"\x00\x01" + b"".join(string(f) + b"\x00" for f in filters)))
            data = b""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
    except OSError:
        return found
    i = 0
    while i + 2 <= len(data):
        kind, mult, length, j = data[i], 1, 0, i + 1
        while j < len(data):
            length += (data[j] & 0x7F) * mult
            mult *= 128
            j += 1
            if not data[j - 1] & 0x80:
                break
        body = data[j : j + length]
        if len(body) < length:
            break
        if kind >> 4 == 3:
            tlen = int.from_bytes(body[:2], "big")
            topic = body[2 : 2 + tlen].decode(errors="replace")
            with contextlib.suppress(ValueError):
                found[topic.removeprefix("$SYS/broker/")] = int(body[2 + tlen :])
        i = j + length
    if found:
        found["total"] = max(found.values())
    return found


def describe(record: dict[str, Any]) -> str:
    r = record["result"]
    parts = []
    if "rate" in r:
        parts.append(f"{r['rate']:,.0f}/s")
    if (
        r.get("latency_us", {}).get("p99") is not None
        and "--rate" in BY_NAME[record["scenario"]].args
    ):
        parts.append(f"p99 {r['latency_us']['p99'] / 1000:.2f} ms")
    if r.get("rss_per_conn_kib") is not None:
        parts.append(f"{r['rss_per_conn_kib']:.2f} KiB/conn")
    if r.get("deliver_s") is not None:
        parts.append(f"store {r.get('store_rate', 0):,.0f}/s, deliver {r['deliver_s']:.2f} s")
    if "gen_cpu" in r:
        parts.append(f"gen {r['gen_cpu']:.0%}, broker {r.get('broker_cpu', -1):.0%} cpu")
    if r.get("drops"):
        parts.append(f"dropped {r['drops'].get('total', 0):,}")
    if record.get("other_load"):
        parts.append(f"others {record['other_load']:.2f} cores")
    if record.get("problems"):
        parts.append("INVALID: " + "; ".join(record["problems"]))
    return ", ".join(parts)


# --------------------------------------------------------------- summary


def summarize(runs: list[dict[str, Any]], broker_names: list[str]) -> list[dict[str, Any]]:
    """Median per figure and broker, and the ratio against the better Mosquitto."""
    rows = []
    for fig in FIGURES:
        per_broker: dict[str, Any] = {}
        for name in broker_names:
            mine = [r for r in runs if r["scenario"] == fig.scenario and r["broker"] == name]
            values = [v for r in mine if (v := dig(r["result"], fig.path)) is not None and v >= 0]
            per_broker[name] = {
                "values": values,
                "median": statistics.median(values) if values else None,
                "invalid_rounds": sum(1 for r in mine if r.get("problems")),
                "rounds": len(mine),
            }
        if not any(b["rounds"] for b in per_broker.values()):
            continue
        mosq = [per_broker[n]["median"] for n in broker_names if n != brokers.ROOST]
        mosq = [m for m in mosq if m is not None]
        best = (max(mosq) if fig.higher_is_better else min(mosq)) if mosq else None
        best_name = next(
            (n for n in broker_names if n != brokers.ROOST and per_broker[n]["median"] == best),
            None,
        )
        roost = per_broker.get(brokers.ROOST, {}).get("median")
        ratio = roost / best if roost is not None and best else None
        rows.append(
            {
                "figure": fig.key,
                "group": fig.group,
                "scenario": fig.scenario,
                "label": fig.label,
                "unit": fig.unit,
                "scale": fig.scale,
                "higher_is_better": fig.higher_is_better,
                "brokers": per_broker,
                "best_mosquitto": best_name,
                "ratio": ratio,
                "verdict": verdict(fig, roost, ratio),
            }
        )
    return rows


def summarize_comparisons(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians of both sides of every comparison that was run, and their ratio."""

    def median(side: tuple[str, str], path: str) -> tuple[float | None, int]:
        mine = [r for r in runs if (r["scenario"], r["broker"]) == side]
        values = [v for r in mine if (v := dig(r["result"], path)) is not None]
        invalid = sum(1 for r in mine if r.get("problems"))
        return (statistics.median(values) if values else None), invalid

    rows = []
    for c in COMPARISONS:
        num, num_bad = median(c.num, c.path)
        den, den_bad = median(c.den, c.path) if c.den else (None, 0)
        if num is None and den is None:
            continue
        value = (num / den if num is not None and den else None) if c.den else num
        ok = None
        if c.goal is not None and value is not None:
            shown = value * c.scale if not c.den else value
            ok = shown >= c.goal if c.higher_is_better else shown <= c.goal
        rows.append({"key": c.key, "label": c.label, "numerator": num, "denominator": den,
                     "value": value, "unit": c.unit, "scale": c.scale, "goal": c.goal,
                     "higher_is_better": c.higher_is_better, "ok": ok,
                     "invalid_rounds": num_bad + den_bad, "num": list(c.num),
                     "den": list(c.den) if c.den else None})
    return rows


def comparison_text(row: dict[str, Any]) -> tuple[str, str, str]:
    """(value, goal, result) as printed and documented."""
    if row["value"] is None:
        value = "-"
    elif row["den"]:
        value = f"{row['value']:.2f}×"
    else:
        value = f"{row['value'] * row['scale']:,.2f} {row['unit']}".replace(".00 messages", " messages")
    goal = ""
    if row["goal"] is not None:
        sign = "≥" if row["higher_is_better"] else "≤"
        goal = f"{sign}{row['goal']:g}{'×' if row['den'] else ' ' + row['unit']}"
    result = "" if row["ok"] is None else "pass" if row["ok"] else "miss"
    if row["invalid_rounds"]:
        result += f" (⚠{row['invalid_rounds']})"
    return value, goal, result


def print_comparisons(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print(f"\n{'comparison':58} {'value':>14} {'goal':>8}  result")
    for row in rows:
        value, goal, result = comparison_text(row)
        print(f"{row['label']:58} {value:>14} {goal:>8}  {result}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'figure':44} {'roost':>12} {'mosquitto':>12} {'mosq-nodelay':>12} {'ratio':>7}  verdict"
    )
    for row in rows:
        cells = []
        for name in brokers.ALL_BROKERS:
            m = row["brokers"].get(name, {}).get("median")
            cells.append(
                "-"
                if m is None
                else f"{m * row['scale']:,.2f}"
                if row["scale"] != 1 or m < 100
                else f"{m:,.0f}"
            )
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        label = f"{row['label']} ({row['unit']})"
        print(
            f"{label:44} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12} {ratio:>7}  {row['verdict']}"
        )


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round, 1 s measured, fewer connections"
    )
    p.add_argument("--scenarios", help="comma-separated subset of: " + ", ".join(BY_NAME))
    p.add_argument(
        "--brokers",
        default=",".join(brokers.ALL_BROKERS),
        help="comma-separated subset of: %(default)s",
    )
    p.add_argument("--rounds", type=int, help="rounds per scenario (default 3, 1 with --quick)")
    p.add_argument(
        "--duration",
        type=float,
        help="measured seconds per throughput run (default 5, 1 with --quick)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        help="warm-up seconds before measuring (default 1, 0.3 with --quick)",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of Roost")
    p.add_argument("--profile", default="fanin-qos0", choices=[s.name for s in SCENARIOS],
                   metavar="SCENARIO", help="the scenario the py-spy profile runs (default fanin-qos0)")
    p.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite docs/benchmarks.md and its chart (default: only for a full run)",
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep broker logs and configs")
    opts = p.parse_args(argv)
    opts.rounds = opts.rounds or (1 if opts.quick else 3)
    opts.duration = opts.duration or (1.0 if opts.quick else 5.0)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if opts.quick else 1.0)
    names = opts.scenarios.split(",") if opts.scenarios else [s.name for s in SCENARIOS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    opts.scenario_list = [BY_NAME[n] for n in names]
    opts.broker_list = opts.brokers.split(",")
    # A smoke run or a subset is no measurement to publish: docs only when asked then.
    partial = opts.quick or opts.scenarios or set(opts.broker_list) != set(brokers.ALL_BROKERS)
    opts.no_docs = not (opts.docs if opts.docs is not None else not partial)
    known = (*brokers.ALL_BROKERS, *brokers.ROOST_FAMILY, brokers.MOSQUITTO_PERSIST,
             brokers.MOSQUITTO_ACL)
    if bad := [b for b in opts.broker_list if b not in known]:
        p.error(f"unknown broker(s): {', '.join(bad)}")
    return opts


def configurations(scenario: Scenario, opts: argparse.Namespace) -> list[str]:
    """The broker configurations a scenario runs against, in order."""
    if not scenario.brokers:
        return [b for b in opts.broker_list if b in brokers.ALL_BROKERS]
    return [b for b in scenario.brokers
            if b in opts.broker_list or brokers.family(b) in opts.broker_list]


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _runs_roost(opts: argparse.Namespace) -> bool:
    return any(name.startswith(brokers.ROOST) for name in opts.broker_list)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    # Stay off the broker's core ourselves.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {int(brokers.LOADGEN_CORE)})
    started = time.time()
    fd_limit = raise_fd_limit()
    if fd_limit < 10_100:
        log(f"warning: only {fd_limit} file descriptors; the 10,000-connection scenario will fail")
    if (os.cpu_count() or 1) < 2:
        log("warning: fewer than 2 cores; broker and load generator will share one")
    if not opts.no_docs or (_runs_roost(opts) and not opts.no_profile):
        require_bench_extra()
    if any(b != brokers.ROOST for b in opts.broker_list):
        brokers.ensure_mosquitto()
    loadgen = build_loadgen()
    python = (
        str(REPO / ".venv" / "bin" / "python")
        if (REPO / ".venv" / "bin" / "python").exists()
        else sys.executable
    )
    if brokers.ROOST in opts.broker_list:
        ok, detail = brokers.roost_available(python)
        if not ok:
            log(f"Roost's broker does not run yet (python -m broker --help: {detail})")
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="roost-bench-"))
    ctx: dict[str, Any] = {
        "workdir": workdir, "python": python, "loadgen": loadgen, "pki": None, "platform": None,
    }
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    try:
        if any(s.platform for s in opts.scenario_list):
            import platform_broker

            log(f"preparing the platform: tenant, ACL rules, {PLATFORM_DEVICES} device certificates")
            ctx["platform"] = platform_broker.prepare(workdir, PLATFORM_DEVICES)
        if any(s.tls and not s.platform for s in opts.scenario_list):
            import certs

            # One certificate, hence one client id, per connection, warm-up ones included:
            # a repeated client id would take the earlier connection's session over.
            clients = max(
                int(a[a.index("--conns") + 1]) + int(a[a.index("--warm-conns") + 1])
                for s in opts.scenario_list
                if s.tls and not s.platform and (a := loadgen_args(s, opts.quick, opts.warmup, opts.duration))
            )
            ctx["pki"] = certs.make_pki(workdir / "pki", clients)
            log(f"test PKI: CA and {clients} ECDSA P-256 device certificates in {workdir / 'pki'}")
        total = sum(len(configurations(s, opts)) for s in opts.scenario_list) * opts.rounds
        done = 0
        for scenario in opts.scenario_list:
            for round_no in range(1, opts.rounds + 1):
                for name in configurations(scenario, opts):
                    done += 1
                    record = run_once(scenario, name, round_no, opts, ctx)
                    record["loadavg"] = os.getloadavg()[0]
                    runs.append(record)
                    log(
                        f"[{done}/{total}] {scenario.name} round {round_no} {name}: {describe(record)}"
                    )
        if _runs_roost(opts) and not opts.no_profile:
            log(f"profiling Roost with py-spy during {opts.profile}")
            profile = profiling.profile_roost(ctx, opts, run_loadgen)
    finally:
        for proc in list(_live_loadgens):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for broker in list(_live_brokers):
            brokers.stop(broker)
        if opts.keep_workdir:
            log(f"broker logs and configs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = summarize(runs, [b for b in opts.broker_list if b in brokers.ALL_BROKERS])
    comparisons = summarize_comparisons(runs)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    document = {
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "options": {
            "quick": opts.quick,
            "rounds": opts.rounds,
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "scenarios": [s.name for s in opts.scenario_list],
            "brokers": opts.broker_list,
        },
        "machine": machine_info(),
        "versions": {
            "python": platform.python_version(),
            "mosquitto": brokers.mosquitto_version(),
            "roost": roost_revision(),
            "openssl": _openssl_version(),
            "gcc": _gcc_version(),
        },
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "fd_limit": fd_limit,
        "scenarios": {
            s.name: {
                "title": s.title,
                "loadgen": loadgen_args(s, opts.quick, opts.warmup, opts.duration),
            }
            for s in opts.scenario_list
        },
        "runs": runs,
        "summary": rows,
        "comparisons": comparisons,
        "profile": profile,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{stamp}{'-quick' if opts.quick else ''}.json"
    out.write_text(json.dumps(document, indent=1) + "\n")
    log(f"results: {out.relative_to(REPO)} ({document['elapsed_s']:.0f} s)")
    print_table(rows)
    print_comparisons(comparisons)
    if not opts.no_docs:
        import report

        docs = report.write_docs(document, out)
        log(f"wrote {', '.join(str(p.relative_to(REPO)) for p in docs)}")
    return 0


def _openssl_version() -> str:
    import ssl

    # The library both the load generator and Python's ssl module link against.
    if shutil.which("openssl"):
        out = subprocess.run(["openssl", "version"], capture_output=True, text=True)
        if out.stdout.strip():
            return out.stdout.strip()
    return ssl.OPENSSL_VERSION


def _gcc_version() -> str:
    out = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    return (out.stdout.splitlines() or ["unknown"])[0]


if __name__ == "__main__":
    sys.exit(main())
