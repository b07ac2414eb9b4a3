"""Bulk import end to end on PostgreSQL: 10,000 devices with server-generated P-256 keys.

Run: .venv/bin/python bench/import_bench.py [--devices 10000] [--server postgres://postgres@127.0.0.1:5432/]
     .venv/bin/python bench/import_bench.py --in-process --profile   (no web/worker; cProfile of the job)

What runs is what `roost up` runs: a fresh database (created here, migrated with `manage.py
migrate` in a subprocess, dropped afterwards), the web service (daphne) and the Celery worker
(threads pool). The clock runs from the POST of the CSV (`devices/import?issue_certs=true`)
to the last byte of the downloaded bundle. Prints devices/s and the job's time per phase, and
writes the result as JSON to bench/results/import.json. Aim: <= 30 s for 10,000 on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from platform_env import REPO, Database, free_port, manage, stop, wait_http  # noqa: E402

TENANT = "bench"


def fleet_csv(count: int) -> bytes:
    lines = ["name,display_name,tags,attr.site,attr.line"]
    lines += [f"bench-{i:06d},Sensor {i},pilot;th-2,{'north' if i % 2 else 'south'},{i % 12}" for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


def request(url: str, key: str, method: str = "GET", data: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    sent = {"Authorization": f"Bearer {key}", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def wait_log(path: Path, marker: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if marker in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{marker!r} not seen in {path}:\n{path.read_text(errors='replace')[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc), so that a run on a busy machine can
    be told apart from a slow one: wall time grows with the load, CPU time hardly."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def end_to_end(env: dict[str, str], data_dir: Path, count: int) -> dict[str, Any]:
    key = manage(env, "api-key", "create", "--tenant", TENANT, "--role", "operator", "--name", "bench").split()[-1]
    port = free_port()
    web_env = dict(env, ROOST_WEB_PORT=str(port), ROOST_PUBLIC_URL=f"http://127.0.0.1:{port}",
                   ROOST_API_RATE="100000/min")
    web_log, worker_log = data_dir / "web.log", data_dir / "worker.log"
    with web_log.open("wb") as wl, worker_log.open("wb") as kl:
        web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                "roost.asgi:application"], cwd=REPO, env=web_env, stdout=wl, stderr=wl)
        # As `roost up` starts it.
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "roost", "worker", "--pool", "threads",
                                   "--concurrency", "4", "--loglevel", "INFO", "--without-gossip",
                                   "--without-mingle", "--without-heartbeat"], cwd=REPO, env=env, stdout=kl,
                                  stderr=kl)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", web)
            wait_log(worker_log, " ready.", worker)
            body = fleet_csv(count)
            base = f"http://127.0.0.1:{port}/api/v1/tenants/{TENANT}"
            cpu_before = cpu_seconds(worker.pid)
            started = time.perf_counter()
            status, raw, headers = request(f"{base}/devices/import?issue_certs=true", key, "POST", body,
                                           {"Content-Type": "text/csv"})
            submitted = time.perf_counter()
            if status != 202:
                raise RuntimeError(f"import refused: {status} {raw[:500]!r}")
            job_url = headers["Location"]
            while True:
                status, raw, _ = request(job_url, key)
                job = json.loads(raw)
                if job["state"] in ("done", "failed"):
                    break
                time.sleep(0.2)
            if job["state"] != "done":
                raise RuntimeError(f"the job failed: {job['message']}")
            status, bundle, _ = request(job["bundle"], key, headers={"Accept": "application/zip"})
            finished = time.perf_counter()
            worker_cpu = cpu_seconds(worker.pid) - cpu_before
            with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
                keys = sum(1 for name in archive.namelist() if name.endswith("/device.key"))
        finally:
            stop(worker)
            stop(web)
    return {"job": job, "seconds": finished - started, "submit_seconds": submitted - started,
            "bundle_bytes": len(bundle), "keys_in_bundle": keys, "worker_cpu_seconds": worker_cpu}


def in_process(env: dict[str, str], count: int, profile: bool) -> dict[str, Any]:
    """The job run in this process (the service the worker runs), optionally under cProfile."""
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from devices.imports import claim_job, run_job, submit_import
    from devices.models import Tenant

    tenant = Tenant.objects.get(slug=TENANT)
    cpu_before = time.process_time()
    started = time.perf_counter()
    job = submit_import(tenant, fleet_csv(count), issue_certs=True)
    claimed = claim_job(job.pk)
    assert claimed is not None
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run_job, claimed)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    else:
        run_job(claimed)
    return {"job": {"state": claimed.state, "created": claimed.created_count, "failed": claimed.failed,
                    "certificates": claimed.certificate_count, "timings": claimed.timings},
            "seconds": time.perf_counter() - started, "worker_cpu_seconds": time.process_time() - cpu_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--server", default=os.environ.get("ROOST_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--in-process", action="store_true", help="Run the job here instead of web + worker.")
    parser.add_argument("--profile", action="store_true", help="With --in-process: print a cProfile summary.")
    options = parser.parse_args()

    database = Database(options.server, "import")
    database.create()
    data_dir = Path(tempfile.mkdtemp(prefix="roost-import-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(DATABASE_URL=database.url, ROOST_DATA_DIR=str(data_dir), ROOST_ENV="test", ROOST_LOG_LEVEL="WARNING",
               DJANGO_SETTINGS_MODULE="roost.settings", PYTHONUNBUFFERED="1")
    try:
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "initpki")
        manage(env, "tenant", "create", TENANT)
        result = (in_process(env, options.devices, options.profile) if options.in_process
                  else end_to_end(env, data_dir, options.devices))
    finally:
        database.drop()
    job = result["job"]
    rate = options.devices / result["seconds"]
    print(f"{options.devices} devices with P-256 keys and certificates, PostgreSQL, "
          f"{'in process' if options.in_process else 'web + Celery worker'}")
    print(f"  end to end: {result['seconds']:.1f} s  ({rate:,.0f} devices/s)  state={job['state']}")
    if "submit_seconds" in result:
        print(f"  POST answered 202 after {result['submit_seconds']:.2f} s; bundle {result['bundle_bytes'] / 1e6:.1f} MB, "
              f"{result['keys_in_bundle']} keys")
    print("  job phases (s): " + ", ".join(f"{name} {value:.2f}" for name, value in job["timings"].items()))
    print(f"  CPU of the process running the job: {result['worker_cpu_seconds']:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    record = {"devices": options.devices, "seconds": round(result["seconds"], 2), "devices_per_second": round(rate),
              "worker_cpu_seconds": round(result["worker_cpu_seconds"], 2),
              "mode": "in-process" if options.in_process else "end-to-end", "timings": job["timings"],
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()}}
    out = REPO / "bench" / "results" / "import.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
