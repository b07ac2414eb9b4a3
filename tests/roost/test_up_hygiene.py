"""Process hygiene: `roost up`'s children die with it even on SIGKILL, and nothing the
platform's processes write lands in the working directory (the checkout, under tests)."""

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
from typing import Any

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_killing_roost_up_with_sigkill_stops_every_child_and_frees_its_ports(tmp_path: Path) -> None:
    web, broker, bridge, metrics = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        ROOST_DATA_DIR=str(tmp_path / "var"), ROOST_WEB_PORT=str(web), ROOST_BROKER_PORT=str(broker),
        ROOST_BROKER_BRIDGE_PORT=str(bridge), ROOST_BROKER_METRICS_PORT=str(metrics),
        ROOST_ADMIN_PASSWORD="a-long-admin-password", PYTHONUNBUFFERED="1",
    )
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    log_path = tmp_path / "up.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "up"], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    children: set[int] = set()
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/healthz", timeout=2):  # noqa: S310
                    pass
                socket.create_connection(("127.0.0.1", broker), timeout=1).close()
                return True
            except OSError:
                return False

        assert _until(ready, 90), log_path.read_text()
        output = log_path.read_text()
        children = {int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", output)}
        assert {"web", "worker", "broker"} <= set(re.findall(r"started (\w+) \(pid", output))
        assert _alive(children) == children
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _until(lambda: not _alive(children), 15), f"still running: {_alive(children)}"
        assert _until(lambda: all(_port_free(p) for p in (web, broker, bridge, metrics)), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _alive(children):  # only if the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)
    assert list(workdir.iterdir()) == [], "the platform wrote into its working directory"


def test_the_celery_filesystem_transport_keeps_every_folder_in_the_data_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    if settings.CELERY_BROKER_URL != "filesystem://":
        pytest.skip("Redis is configured: no filesystem transport")
    folders = {k: Path(v) for k, v in options.items() if k.endswith("folder") or k.startswith("data_folder")}
    assert {"control_folder", "data_folder_in", "data_folder_out", "processed_folder"} <= set(folders)
    data_dir = Path(settings.ROOST_DATA_DIR).resolve()
    assert all(path.resolve().is_relative_to(data_dir) for path in folders.values()), folders
    # And for real: binding a queue to a fanout exchange (what the worker's pidbox does for
    # `celery control`) writes the exchange table there, not into the working directory.
    from kombu import Exchange, Queue

    from roost.celery import app

    monkeypatch.chdir(tmp_path)
    exchange = f"hygiene-{os.getpid()}"
    with app.connection_for_write() as connection:
        Queue(f"{exchange}-q", Exchange(exchange, type="fanout"), channel=connection.channel()).declare()
    table = folders["control_folder"] / f"{exchange}.exchange"
    try:
        assert list(tmp_path.iterdir()) == []
        assert table.exists()
    finally:
        table.unlink(missing_ok=True)
