"""`GET devices/?online=true` on a tenant of 100,000 devices, 20 clients at once.

Run: .venv/bin/python bench/api_devices.py                       (SQLite in a temporary data dir)
     .venv/bin/python bench/api_devices.py --postgres [--server postgres://postgres@127.0.0.1:5432/]

What is measured is what `roost up` serves: the web service (daphne, DEBUG off) on a fresh
database (migrated and prepared with `manage.py up --prepare-only`; a PostgreSQL database is
created here and dropped afterwards). The fleet is written with bulk_create: 100,000 devices
in 100 groups, 10% online, each online one with a connection log (connect, disconnect,
connect, so the live certificate serial is a real lookup). Then `--clients` threads, each
with its own keep-alive connection (http.client) and an API key, share `--requests` GETs of
the first page (default 100 devices). Prints p50/p90/p99/max and requests/s, the same for one
client alone (the service time, without queueing), and writes the result as JSON to
bench/results/api_devices[-postgres].json. Aim: p99 <= 100 ms with 20 clients.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from platform_env import REPO, Database, free_port, manage, stop, wait_http  # noqa: E402

TENANT = "bench"


def populate(env: dict[str, str], count: int, online_fraction: float) -> str:
    """Write the fleet straight into the database (in this process); returns a viewer API key."""
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connections, transaction

    from broker.integration.models import ConnectionEvent
    from devices.apikeys import create_api_key
    from devices.models import Device, DeviceGroup
    from devices.services import create_tenant

    tenant = create_tenant(TENANT)
    groups = DeviceGroup.objects.bulk_create([DeviceGroup(tenant=tenant, name=f"line-{i:03d}") for i in range(100)])
    now = datetime.now(UTC)
    every = max(1, round(1 / online_fraction)) if online_fraction else 0
    with transaction.atomic():
        for start in range(0, count, 5_000):
            batch = []
            for i in range(start, min(count, start + 5_000)):
                online = bool(every) and i % every == 0
                batch.append(Device(
                    tenant=tenant, name=f"sensor-{i:06d}", display_name=f"Sensor {i}", group=groups[i % 100],
                    tags=["pilot"] if i % 3 == 0 else [], attributes={"site": "north" if i % 2 else "south",
                                                                      "line": i % 12},
                    online=online, last_seen=now - timedelta(seconds=i) if online or i % 4 == 0 else None,
                    last_ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" if online else None,
                    protocol_version=5 if online else None,
                ))
            Device.objects.bulk_create(batch, batch_size=1_000)
        online_ids = list(Device.objects.filter(tenant=tenant, online=True).values_list("pk", "name"))
        events = []
        for pk, name in online_ids:
            for minutes, kind, serial in ((90, "connected", "0a"), (60, "disconnected", "0a"), (5, "connected", "0b")):
                events.append(ConnectionEvent(tenant=tenant, device_id=pk, client_id=name, event=kind,
                                              at=now - timedelta(minutes=minutes), protocol_version=5,
                                              certificate_serial=f"{serial}{pk:038x}", remote_address="10.0.0.1:1"))
        ConnectionEvent.objects.bulk_create(events, batch_size=2_000)
    key = create_api_key(tenant, role="viewer", name="bench").key
    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as a database in service would have them
    connections.close_all()
    return key


def load(port: int, path: str, key: str, clients: int, total: int) -> dict[str, Any]:
    """`clients` threads with a keep-alive connection each share `total` GETs of `path`."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    remaining = [total]
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    failures.append(f"{response.status} {body[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {"clients": clients, "requests": len(latencies), "failures": len(failures),
            "first_failure": failures[0] if failures else None, "seconds": round(wall, 2),
            "requests_per_second": round(len(latencies) / wall, 1), "p50_ms": round(pct(0.50), 1),
            "p90_ms": round(pct(0.90), 1), "p99_ms": round(pct(0.99), 1), "max_ms": round(ordered[-1] * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1)}


def run(env: dict[str, str], options: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    manage(env, "up", "--prepare-only")
    started = time.perf_counter()
    key = populate(env, options.devices, options.online)
    fixture_seconds = time.perf_counter() - started
    port = free_port()
    web_env = dict(env, ROOST_WEB_PORT=str(port), ROOST_PUBLIC_URL=f"http://127.0.0.1:{port}",
                   ROOST_API_RATE="10000000/min", ROOST_DEBUG="0", ROOST_LOG_LEVEL="WARNING")
    with (data_dir / "web.log").open("wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                "roost.asgi:application"], cwd=REPO, env=web_env, stdout=log, stderr=log)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", web)
            path = f"/api/v1/tenants/{TENANT}/devices/?online=true"
            if options.limit:
                path += f"&limit={options.limit}"
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            page = json.loads(conn.getresponse().read())
            conn.close()
            shown = page["results"]
            assert shown and all(d["presence"]["online"] and d["presence"]["certificate_serial"] for d in shown), page
            load(port, path, key, options.clients, min(100, options.requests))  # warm-up
            alone = load(port, path, key, 1, min(200, options.requests))
            loaded = load(port, path, key, options.clients, options.requests)
        finally:
            stop(web)
    if loaded["failures"]:
        errors = [line for line in (data_dir / "web.log").read_text(errors="replace").splitlines()
                  if "Error" in line or "error" in line]
        print("web service errors (last 5):", *errors[-5:], sep="\n  ", file=sys.stderr)
    return {"page_size": len(shown), "fixture_seconds": round(fixture_seconds, 1), "one_client": alone,
            "concurrent": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--online", type=float, default=0.1, help="Fraction of devices online (default 0.1).")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--limit", type=int, default=0, help="Page size (default: the API's, 100).")
    parser.add_argument("--postgres", action="store_true", help="Use a fresh PostgreSQL database.")
    parser.add_argument("--settings", default="roost.settings",
                        help="DJANGO_SETTINGS_MODULE of the web service (to try another database setup).")
    parser.add_argument("--server", default=os.environ.get("ROOST_BENCH_POSTGRES",
                                                           "postgres://postgres@127.0.0.1:5432/"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roost-bench-api-") as tmp:
        data_dir = Path(tmp)
        env = dict(os.environ, ROOST_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE=options.settings,
                   ROOST_ENV="development", PYTHONUNBUFFERED="1")
        env.pop("DATABASE_URL", None)
        database = Database(options.server, "api") if options.postgres else None
        if database is not None:
            database.create()
            env["DATABASE_URL"] = database.url
        try:
            result = run(env, options, data_dir)
        finally:
            if database is not None:
                database.drop()
    result.update(database="postgresql" if options.postgres else "sqlite", settings=options.settings,
                  devices=options.devices,
                  online_fraction=options.online, python=platform.python_version(), cpus=os.cpu_count(),
                  when=datetime.now(UTC).isoformat(timespec="seconds"))
    concurrent, alone = result["concurrent"], result["one_client"]
    print(f"{result['database']}: {options.devices:,} devices, {options.online:.0%} online, page of "
          f"{result['page_size']} (fixture written in {result['fixture_seconds']} s)")
    for label, row in (("1 client", alone), (f"{options.clients} clients", concurrent)):
        print(f"  {label:>10}: {row['requests']} requests, {row['requests_per_second']} req/s, "
              f"p50 {row['p50_ms']} ms, p90 {row['p90_ms']} ms, p99 {row['p99_ms']} ms, max {row['max_ms']} ms, "
              f"{row['failures']} failed")
    out = REPO / "bench" / "results" / f"api_devices{'-postgres' if options.postgres else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
