"""What the platform benchmarks share: a PostgreSQL database of their own, manage.py, ports."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
MANAGE = str(REPO / "manage.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Database:
    """A PostgreSQL database of its own on the server of `server`, dropped afterwards."""

    def __init__(self, server: str, purpose: str) -> None:
        self.server = server
        self.name = f"roost_bench_{purpose}_{uuid.uuid4().hex[:10]}"
        self.url = urlunsplit(urlsplit(server)._replace(path="/" + self.name))

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.server, autocommit=True)

    def create(self) -> None:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def manage(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    """`manage.py ARGS` in `env`; its output, or RuntimeError with its stderr."""
    done = subprocess.run([sys.executable, MANAGE, *args], cwd=REPO, env=env, text=True, capture_output=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Return once `url` answers; RuntimeError if `proc` dies or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
