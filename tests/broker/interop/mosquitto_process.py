"""Debian's Mosquitto as a peer of the tests: started on a free port from a config text."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port as free_port  # the one port picker of the tests


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Mosquitto:
    """`mosquitto -c FILE` with a listener on `port`; root, so it reads pytest's files."""

    def __init__(self, directory: Path, port: int, extra: str = "allow_anonymous true\n") -> None:
        self.port = port
        self.conf = directory / f"mosquitto-{port}.conf"
        self.conf.write_text(f"user root\nlistener {port} 127.0.0.1\npersistence false\n"
                             f"log_dest stderr\nlog_type error\n{extra}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_for_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
