"""ACL decision throughput: publish and subscribe, compiled and cached, for 10 / 1,000 / 10,000 rules.

Run: .venv/bin/python bench/acl_bench.py   (no database; the pure core only)
Prints a table and writes it as JSON to bench/results/acl.json. Every rule applies to the
benchmarked device (the worst case: a real device sees only its own and its groups' rules).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acl.compiler import DecisionCache, compile_rules  # noqa: E402
from acl.rules import Principal, RuleSpec  # noqa: E402

RULE_COUNTS = (10, 1_000, 10_000)
SAMPLES = 2_000
REPEATS = 5
PRINCIPAL = Principal.for_device("bench", "d1", ("floor-1", "building"), {"zone": "north"})


def make_rules(count: int) -> list[RuleSpec]:
    """A mix of per-device, per-group and fleet rules with wildcards, denies and limits."""
    rules = [RuleSpec(1, "bench", "all_devices", "", "both", "devices/{device}/#", "allow")]
    for i in range(1, count):
        kind = i % 5
        if kind == 0:
            spec = ("all_devices", "", "publish", f"fleet/{i}/{{device}}/#", "allow", 1, True)
        elif kind == 1:
            spec = ("group", "building", "subscribe", f"sites/{i}/+/telemetry", "allow", None, True)
        elif kind == 2:
            spec = ("all_devices", "", "both", f"fleet/{i - 2}/{{device}}/secret", "deny", None, True)
        elif kind == 3:
            spec = ("group", "floor-1", "both", f"groups/{{group}}/{i}/#", "allow", 2, False)
        else:
            spec = ("all_devices", "", "publish", f"zones/{{attr:zone}}/{i}/+", "allow", None, True)
        rules.append(RuleSpec(i + 1, "bench", spec[0], spec[1], spec[2], spec[3], spec[4], spec[5], spec[6]))
    return rules


def make_topics(count: int) -> list[str]:
    topics = []
    for k in range(SAMPLES):
        i = (k * 7919) % max(count, 1)
        pick = k % 6
        topics.append([
            f"devices/d1/telemetry/{k % 50}", f"fleet/{i - i % 5}/d1/temp", f"fleet/{i - i % 5}/d1/secret",
            f"groups/floor-1/{i}/state", f"zones/north/{i}/x", f"unknown/{k}/topic",
        ][pick])
    return topics


def make_filters(count: int) -> list[str]:
    filters = []
    for k in range(SAMPLES):
        i = (k * 7919) % max(count, 1)
        pick = k % 5
        filters.append([
            "devices/d1/+/temp", f"fleet/{i - i % 5}/d1/#", f"sites/{i - i % 5 + 1}/+/telemetry",
            f"$share/g/groups/floor-1/{i}/#", "#",
        ][pick])
    return filters


def rate(calls: int, action) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return calls / best


def bench(count: int) -> dict[str, float]:
    rules = make_rules(count)
    started = time.perf_counter()
    matcher = compile_rules(PRINCIPAL, rules, version=1)
    compile_ms = (time.perf_counter() - started) * 1000
    topics, filters = make_topics(count), make_filters(count)
    publish, subscribe = matcher.publish, matcher.subscribe
    cache = DecisionCache(matcher, maxsize=4 * SAMPLES)
    cached_publish, cached_subscribe = cache.publish, cache.subscribe
    for topic in topics:
        cached_publish(topic, 1, False)
    for topic_filter in filters:
        cached_subscribe(topic_filter, 1)

    def run_publish() -> None:
        for topic in topics:
            publish(topic, 1, False)

    def run_subscribe() -> None:
        for topic_filter in filters:
            subscribe(topic_filter, 1)

    def run_cached_publish() -> None:
        for topic in topics:
            cached_publish(topic, 1, False)

    def run_cached_subscribe() -> None:
        for topic_filter in filters:
            cached_subscribe(topic_filter, 1)

    def run_delivery() -> None:
        for topic in topics:
            matcher.deliverable(topic)

    return {
        "rules": count,
        "compile_ms": round(compile_ms, 2),
        "publish_per_s": round(rate(len(topics), run_publish)),
        "publish_cached_per_s": round(rate(len(topics), run_cached_publish)),
        "subscribe_per_s": round(rate(len(filters), run_subscribe)),
        "subscribe_cached_per_s": round(rate(len(filters), run_cached_subscribe)),
        "delivery_check_per_s": round(rate(len(topics), run_delivery)),
    }


def main() -> None:
    rows = [bench(count) for count in RULE_COUNTS]
    columns = list(rows[0])
    print(" ".join(f"{name:>22}" for name in columns))
    for row in rows:
        print(" ".join(f"{row[name]:>22,}" for name in columns))
    out = Path(__file__).resolve().parent / "results" / "acl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor(), "single_core": True, "results": rows,
    }, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
