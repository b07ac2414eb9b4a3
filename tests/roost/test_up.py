"""`roost up` serves the platform in the foreground and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status, response.read()


def _alive_in_groups(pgids: set[int]) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) in pgids:
            alive.append(int(entry.name))
    return alive


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.slow
def test_roost_up_serves_health_and_admin_then_stops_every_child(tmp_path: Path) -> None:
    port = free_port()
    broker_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        ROOST_DATA_DIR=str(tmp_path / "var"), ROOST_WEB_PORT=str(port),
        ROOST_BROKER_PORT=str(broker_port), ROOST_BROKER_BRIDGE_PORT=str(free_port()),
        ROOST_BROKER_METRICS_PORT=str(free_port()), ROOST_ADMIN_USER="root-admin",
        ROOST_ADMIN_PASSWORD="a-long-admin-password", PYTHONUNBUFFERED="1",
    )
    log = (tmp_path / "up.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "up"], cwd=tmp_path, env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, Path(log.name).read_text()
        assert b'"status": "ok"' in body
        status, page = _get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200 and b"Roost administration" in page
        _wait_for_port(broker_port)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = Path(log.name).read_text()
    assert "created admin user 'root-admin'" in output
    assert "a-long-admin-password" not in output
    child_pids = {int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", output)}
    assert {"web", "worker", "broker"} <= set(re.findall(r"started (\w+) \(pid", output))
    time.sleep(0.5)
    assert _alive_in_groups(child_pids) == []
