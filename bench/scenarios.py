"""The benchmark's scenarios, the figures taken from them and the goals they are held to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brokers import (
    MOSQUITTO,
    MOSQUITTO_ACL,
    MOSQUITTO_PERSIST,
    ROOST,
    ROOST_ACK,
    ROOST_NONE,
    ROOST_PLATFORM,
)

PAYLOAD = 64
GEN_CPU_LIMIT = 0.90  # generator at or above this share of its core: it may be the bottleneck


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mode: str  # loadgen --mode
    args: tuple[str, ...] = ()
    tls: bool = False
    qos: int = 0
    quick_args: tuple[str, ...] = ()  # replaces same-named args in --quick mode
    timeout: float = 120.0
    # Configurations to run instead of --brokers (filtered by their family, roost/mosquitto).
    brokers: tuple[str, ...] = ()
    broker_args: tuple[str, ...] = ()  # extra `python -m broker` options for Roost
    platform: bool = False  # devices of the platform's PKI (bench/platform_broker.py)
    read_drops: bool = False  # read the broker's dropped-message counters from $SYS afterwards


def _pubsub(*args: str) -> tuple[str, ...]:
    return ("--payload", str(PAYLOAD), *args)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "fanin-qos0",
        "Fan-in QoS 0: 50 publishers → 1 wildcard subscriber",
        "pubsub",
        _pubsub(
            "--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "0", "--window", "64"
        ),
    ),
    Scenario(
        "fanin-qos1",
        "Fan-in QoS 1: 50 publishers → 1 wildcard subscriber",
        "pubsub",
        _pubsub(
            "--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "1", "--window", "10"
        ),
        qos=1,
    ),
    Scenario(
        "fanout-qos0",
        "Fan-out QoS 0: 1 publisher → 50 subscribers",
        "pubsub",
        _pubsub(
            "--topology", "fanout", "--pubs", "1", "--subs", "50", "--qos", "0", "--window", "200"
        ),
    ),
    Scenario(
        "pairs-qos1",
        "Pairs QoS 1: 50 publisher/subscriber pairs",
        "pubsub",
        _pubsub(
            "--topology", "pairs", "--pubs", "50", "--subs", "50", "--qos", "1", "--window", "20"
        ),
        qos=1,
    ),
    Scenario(
        "latency-qos0",
        "Latency QoS 0 at 5,000 msg/s (50 publishers → 1 subscriber)",
        "pubsub",
        _pubsub(
            "--topology",
            "fanin",
            "--pubs",
            "50",
            "--subs",
            "1",
            "--qos",
            "0",
            "--rate",
            "5000",
            "--window",
            "1000",
        ),
    ),
    Scenario(
        "latency-qos1",
        "Latency QoS 1 at 5,000 msg/s (50 publishers → 1 subscriber)",
        "pubsub",
        _pubsub(
            "--topology",
            "fanin",
            "--pubs",
            "50",
            "--subs",
            "1",
            "--qos",
            "1",
            "--rate",
            "5000",
            "--window",
            "1000",
        ),
        qos=1,
    ),
    Scenario(
        "conn-plain",
        "10,000 idle plain connections",
        "connections",
        ("--conns", "10000", "--warm-conns", "10", "--concurrency", "64", "--hold", "2"),
        quick_args=("--conns", "1000"),
        timeout=300,
    ),
    Scenario(
        "conn-tls",
        "2,000 idle mTLS connections (ECDSA P-256 client certificates)",
        "connections",
        ("--conns", "2000", "--warm-conns", "10", "--concurrency", "32", "--hold", "2", "--tls"),
        tls=True,
        quick_args=("--conns", "200"),
        timeout=300,
    ),
    Scenario(
        "retained",
        "100,000 retained topics, then a new '#' subscriber",
        "retained",
        ("--count", "100000", "--window", "100"),
        quick_args=("--count", "10000"),
        timeout=300,
    ),
    Scenario(
        "fanin-mqtt5-alias",
        "Fan-in QoS 0 over MQTT 5 with topic aliases",
        "pubsub",
        _pubsub(
            "--topology",
            "fanin",
            "--pubs",
            "50",
            "--subs",
            "1",
            "--qos",
            "0",
            "--window",
            "64",
            "--proto",
            "5",
            "--alias",
        ),
    ),
)

DURABLE = (ROOST_ACK, ROOST_NONE, MOSQUITTO_PERSIST)
SLOW = (ROOST, MOSQUITTO)
PLATFORM = (ROOST_PLATFORM, MOSQUITTO_ACL)
# The stuck subscriber takes '#' at QoS 0: everything the others get, never read.
STUCK = ("--stuck", "1", "--stuck-filter", "#")

SCENARIOS += (
    Scenario(
        "durable-fanin-qos1",
        "Durable fan-in QoS 1: 50 persistent publishers → 1 persistent subscriber",
        "pubsub",
        _pubsub("--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "1",
                "--window", "10", "--persistent"),
        qos=1,
        brokers=DURABLE,
    ),
    Scenario(
        "durable-pairs-qos1",
        "Durable pairs QoS 1: 50 persistent publisher/subscriber pairs",
        "pubsub",
        _pubsub("--topology", "pairs", "--pubs", "50", "--subs", "50", "--qos", "1",
                "--window", "20", "--persistent"),
        qos=1,
        brokers=DURABLE,
    ),
    Scenario(
        "durable-latency-qos1",
        "Durable latency QoS 1 at 5,000 msg/s (50 persistent publishers → 1 subscriber)",
        "pubsub",
        _pubsub("--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "1",
                "--rate", "5000", "--window", "1000", "--persistent"),
        qos=1,
        brokers=DURABLE,
    ),
    Scenario(
        "slow-base-qos0",
        "Slow consumer, reference: 50 publishers → 1 subscriber, QoS 0",
        "pubsub",
        _pubsub("--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "0",
                "--window", "64"),
        brokers=SLOW,
        broker_args=("--sys-interval", "1"),
        read_drops=True,
    ),
    Scenario(
        "slow-stuck-qos0",
        "Slow consumer: the same plus one '#' subscriber that never reads",
        "pubsub",
        _pubsub("--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "0",
                "--window", "64", *STUCK),
        brokers=SLOW,
        broker_args=("--sys-interval", "1"),
        read_drops=True,
    ),
    Scenario(
        "platform-fanin-qos1",
        "Platform mTLS fan-in QoS 1: 50 devices → 1 device, own certificate each",
        "pubsub",
        _pubsub("--topology", "fanin", "--pubs", "50", "--subs", "1", "--qos", "1",
                "--window", "10", "--topic-root", "devices/%c"),
        tls=True,
        qos=1,
        brokers=PLATFORM,
        platform=True,
    ),
    Scenario(
        "platform-pairs-qos1",
        "Platform mTLS pairs QoS 1: 50 device pairs, own certificate each",
        "pubsub",
        _pubsub("--topology", "pairs", "--pubs", "50", "--subs", "50", "--qos", "1",
                "--window", "20", "--topic-root", "devices/%c"),
        tls=True,
        qos=1,
        brokers=PLATFORM,
        platform=True,
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}
PLATFORM_DEVICES = 100  # the most connections a platform scenario opens


def loadgen_args(s: Scenario, quick: bool, warmup: float, duration: float) -> list[str]:
    """The load generator's arguments for one scenario (without host, port and pid)."""
    args = list(s.args)
    if quick:
        for flag, value in zip(s.quick_args[::2], s.quick_args[1::2], strict=True):
            args[args.index(flag) + 1] = value
    args = ["--mode", s.mode, *args]
    if s.mode == "pubsub":
        args += ["--warmup", str(warmup), "--duration", str(duration)]
    return args


def problems(s: Scenario, result: dict[str, Any]) -> list[str]:
    """Why a run's numbers cannot be trusted, if they cannot."""
    out = []
    if result.get("errors"):
        out.append(f"errors: {result.get('first_error') or result['errors']}")
    # Opening idle plain connections measures memory; their rate has no goal.
    rate_matters = not (s.mode == "connections" and not s.tls)
    if rate_matters and result.get("gen_cpu", 0) >= GEN_CPU_LIMIT:
        out.append(f"load generator at {result['gen_cpu']:.0%} of its core")
    if s.mode == "pubsub":
        if s.qos >= 1:
            for key in ("lost", "duplicated", "out_of_order"):
                if result.get(key):
                    out.append(f"{result[key]} {key.replace('_', '-')} at QoS {s.qos}")
        if result.get("unexpected") or result.get("bad_payload"):
            out.append("messages on the wrong stream or corrupted")
        if "--rate" in s.args and result.get("rate", 0) < 0.95 * float(
            s.args[s.args.index("--rate") + 1]
        ):
            out.append(f"received {result.get('rate', 0):.0f} msg/s, under the fixed rate")
    if s.mode == "connections" and result.get("connected", 0) < result.get("conns", 1):
        out.append(f"only {result.get('connected')} of {result.get('conns')} connected")
    if s.mode == "retained" and not result.get("complete"):
        out.append("the '#' subscriber did not receive every retained message")
    return out


PER_CPU = "rate/broker_cpu"  # a derived figure: rate divided by the broker's CPU share


@dataclass(frozen=True)
class Figure:
    """One number in the results table, and the goal it is held to."""

    key: str
    scenario: str
    path: str  # dotted path in the loadgen result
    label: str
    unit: str
    higher_is_better: bool
    goal: float | None = None  # on the ratio Roost / best Mosquitto, or absolute (see absolute)
    aim: float | None = None
    absolute: bool = False
    scale: float = 1.0  # multiply the raw value for display
    group: str = "main"  # "efficiency": throughput per broker CPU-second, a separate table


FIGURES: tuple[Figure, ...] = (
    Figure("fanin0", "fanin-qos0", "rate", "Fan-in QoS 0", "msg/s", True, 0.5, 1.0),
    Figure("fanin1", "fanin-qos1", "rate", "Fan-in QoS 1", "msg/s", True, 0.5, 1.0),
    Figure("fanout0", "fanout-qos0", "rate", "Fan-out QoS 0", "deliveries/s", True, 0.7, 1.2),
    Figure("pairs1", "pairs-qos1", "rate", "Pairs QoS 1", "msg/s", True, 0.5, 1.0),
    Figure(
        "alias", "fanin-mqtt5-alias", "rate", "Fan-in QoS 0, MQTT 5 topic aliases", "msg/s", True
    ),
    Figure(
        "lat0_p50",
        "latency-qos0",
        "latency_us.p50",
        "Latency QoS 0 p50 @5k/s",
        "ms",
        False,
        scale=1e-3,
    ),
    Figure(
        "lat0_p99",
        "latency-qos0",
        "latency_us.p99",
        "Latency QoS 0 p99 @5k/s",
        "ms",
        False,
        3.0,
        1.5,
        scale=1e-3,
    ),
    Figure(
        "lat0_p999",
        "latency-qos0",
        "latency_us.p999",
        "Latency QoS 0 p99.9 @5k/s",
        "ms",
        False,
        scale=1e-3,
    ),
    Figure(
        "lat1_p50",
        "latency-qos1",
        "latency_us.p50",
        "Latency QoS 1 p50 @5k/s",
        "ms",
        False,
        scale=1e-3,
    ),
    Figure(
        "lat1_p99",
        "latency-qos1",
        "latency_us.p99",
        "Latency QoS 1 p99 @5k/s",
        "ms",
        False,
        3.0,
        1.5,
        scale=1e-3,
    ),
    Figure(
        "lat1_p999",
        "latency-qos1",
        "latency_us.p999",
        "Latency QoS 1 p99.9 @5k/s",
        "ms",
        False,
        scale=1e-3,
    ),
    Figure(
        "rss_plain",
        "conn-plain",
        "rss_per_conn_kib",
        "RSS per idle plain connection",
        "KiB",
        False,
        16.0,
        6.0,
        absolute=True,
    ),
    Figure("rate_plain", "conn-plain", "rate", "Plain connections set up", "conn/s", True),
    Figure(
        "rss_tls",
        "conn-tls",
        "rss_per_conn_kib",
        "RSS per idle mTLS connection",
        "KiB",
        False,
        2.0,
        1.2,
    ),
    Figure("rate_tls", "conn-tls", "rate", "mTLS connections set up", "conn/s", True, 0.6, 0.9),
    Figure(
        "ret_store", "retained", "store_rate", "Retained messages stored (QoS 1)", "msg/s", True
    ),
    Figure(
        "ret_deliver", "retained", "deliver_s", "Retained: all to a new '#' subscriber", "s", False
    ),
    # What the broker achieves per CPU-second it actually got: steadier than raw rates
    # when other processes compete for the broker's core.
    Figure(
        "fanin0_cpu", "fanin-qos0", PER_CPU, "Fan-in QoS 0", "msg/CPU-s", True, group="efficiency"
    ),
    Figure(
        "fanin1_cpu", "fanin-qos1", PER_CPU, "Fan-in QoS 1", "msg/CPU-s", True, group="efficiency"
    ),
    Figure(
        "fanout0_cpu",
        "fanout-qos0",
        PER_CPU,
        "Fan-out QoS 0",
        "deliveries/CPU-s",
        True,
        group="efficiency",
    ),
    Figure(
        "pairs1_cpu", "pairs-qos1", PER_CPU, "Pairs QoS 1", "msg/CPU-s", True, group="efficiency"
    ),
    Figure(
        "alias_cpu",
        "fanin-mqtt5-alias",
        PER_CPU,
        "Fan-in QoS 0, MQTT 5 topic aliases",
        "msg/CPU-s",
        True,
        group="efficiency",
    ),
    Figure(
        "rate_tls_cpu",
        "conn-tls",
        PER_CPU,
        "mTLS connections set up",
        "conn/CPU-s",
        True,
        group="efficiency",
    ),
)


def dig(result: dict[str, Any], path: str) -> float | None:
    if path == PER_CPU:
        rate, cpu = result.get("rate"), result.get("broker_cpu")
        return (
            rate / cpu
            if isinstance(rate, int | float) and isinstance(cpu, int | float) and cpu > 0.05
            else None
        )
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def verdict(fig: Figure, value: float | None, ratio: float | None) -> str:
    """'pass', 'pass (aim met)', 'miss' or '' when the figure has no goal."""
    if fig.goal is None:
        return ""
    measured = value if fig.absolute else ratio
    if measured is None:
        return "n/a"

    def ok(limit: float) -> bool:
        return (
            measured >= limit if (fig.higher_is_better and not fig.absolute) else measured <= limit
        )

    if fig.aim is not None and ok(fig.aim):
        return "pass (aim met)"
    return "pass" if ok(fig.goal) else "miss"


def goal_text(fig: Figure) -> str:
    if fig.goal is None:
        return ""
    if fig.absolute:
        return f"≤{fig.goal:g} {fig.unit} (aim ≤{fig.aim:g})"
    sign = "≥" if fig.higher_is_better else "≤"
    return f"{sign}{fig.goal:g}× (aim {fig.aim:g}×)"


@dataclass(frozen=True)
class Comparison:
    """A ratio between two runs' medians: `num` over `den`, each (scenario, broker).

    For the scenarios that compare a configuration with another one (durability, a stuck
    subscriber, the platform), where the main table's Roost / best Mosquitto does not apply.
    With `den` None the figure is the numerator's median itself, held to an absolute goal.
    """

    key: str
    label: str
    path: str
    num: tuple[str, str]
    den: tuple[str, str] | None
    goal: float | None = None
    higher_is_better: bool = True
    unit: str = "×"
    scale: float = 1.0


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("dur_fanin_self", "Durable fan-in QoS 1: ack / Roost without durability", "rate",
               ("durable-fanin-qos1", ROOST_ACK), ("durable-fanin-qos1", ROOST_NONE), 0.5),
    Comparison("dur_fanin_mosq", "Durable fan-in QoS 1: ack / Mosquitto (persistence on)", "rate",
               ("durable-fanin-qos1", ROOST_ACK), ("durable-fanin-qos1", MOSQUITTO_PERSIST), 1.0),
    Comparison("dur_pairs_self", "Durable pairs QoS 1: ack / Roost without durability", "rate",
               ("durable-pairs-qos1", ROOST_ACK), ("durable-pairs-qos1", ROOST_NONE), 0.5),
    Comparison("dur_pairs_mosq", "Durable pairs QoS 1: ack / Mosquitto (persistence on)", "rate",
               ("durable-pairs-qos1", ROOST_ACK), ("durable-pairs-qos1", MOSQUITTO_PERSIST), 1.0),
    Comparison("dur_p99", "Durable QoS 1 p99 @5k/s, Roost ack", "latency_us.p99",
               ("durable-latency-qos1", ROOST_ACK), None, 5.0, False, "ms", 1e-3),
    Comparison("dur_p99_none", "Durable QoS 1 p99 @5k/s, Roost none", "latency_us.p99",
               ("durable-latency-qos1", ROOST_NONE), None, None, False, "ms", 1e-3),
    Comparison("dur_p99_mosq", "Durable QoS 1 p99 @5k/s, Mosquitto (persistence on)",
               "latency_us.p99", ("durable-latency-qos1", MOSQUITTO_PERSIST), None, None, False,
               "ms", 1e-3),
    Comparison("slow_roost", "Rate beside a stuck subscriber / without, Roost", "rate",
               ("slow-stuck-qos0", ROOST), ("slow-base-qos0", ROOST), 0.9),
    Comparison("slow_mosq", "Rate beside a stuck subscriber / without, Mosquitto", "rate",
               ("slow-stuck-qos0", MOSQUITTO), ("slow-base-qos0", MOSQUITTO), 0.9),
    # Per broker CPU-second: what is left when the machine's other tenants take core 0.
    Comparison("slow_roost_cpu", "Same per broker CPU-second, Roost", PER_CPU,
               ("slow-stuck-qos0", ROOST), ("slow-base-qos0", ROOST), 0.9),
    Comparison("slow_mosq_cpu", "Same per broker CPU-second, Mosquitto", PER_CPU,
               ("slow-stuck-qos0", MOSQUITTO), ("slow-base-qos0", MOSQUITTO), 0.9),
    Comparison("slow_vs", "Rate beside a stuck subscriber, Roost / Mosquitto", "rate",
               ("slow-stuck-qos0", ROOST), ("slow-stuck-qos0", MOSQUITTO)),
    Comparison("slow_drops", "Messages Roost dropped for the stuck subscriber", "drops.total",
               ("slow-stuck-qos0", ROOST), None, unit="messages"),
    Comparison("plat_fanin", "Platform mTLS fan-in QoS 1: Roost platform / Mosquitto", "rate",
               ("platform-fanin-qos1", ROOST_PLATFORM), ("platform-fanin-qos1", MOSQUITTO_ACL)),
    Comparison("plat_pairs", "Platform mTLS pairs QoS 1: Roost platform / Mosquitto", "rate",
               ("platform-pairs-qos1", ROOST_PLATFORM), ("platform-pairs-qos1", MOSQUITTO_ACL)),
)
