"""Runs the platform's processes in the foreground and stops all of them together."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class Output(Protocol):
    """Where the supervisor reports: a text stream, or a management command's stdout."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


class Supervisor:
    """Start children in their own process groups; on a signal or a child's exit, stop them all.

    Each child gets its own process group so that stopping it also stops whatever it forked
    (Celery's pool processes), and so that we decide the order and the grace period.
    """

    def __init__(self, children: Sequence[Child], out: Output, grace: float = 10.0) -> None:
        self.children = list(children)
        self.out = out
        self.grace = grace
        self._stopping = False

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                child.process = subprocess.Popen(list(child.argv), start_new_session=True,
                                                 preexec_fn=die_with_parent(os.getpid()))
                self.out.write(f"started {child.name} (pid {child.process.pid})\n")
                self.out.flush()
            return self._wait()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _wait(self) -> int:
        while not self._stopping:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    self.out.write(f"{child.name} exited with status {code}; stopping everything\n")
                    self.out.flush()
                    return code or 1
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            # The leader first, so that it can stop its own workers in order.
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.out.write(f"{child.name} did not stop in {self.grace:.0f}s; killing it\n")
                self._signal_group(child, signal.SIGKILL)
                child.process.wait()
        # Grandchildren left behind by a child that exited first still share its group.
        for child in self.children:
            self._signal_group(child, signal.SIGKILL)
        self.out.flush()

    @staticmethod
    def _signal_group(child: Child, sig: int) -> None:
        if child.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, sig)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when the supervisor dies, even by
    SIGKILL, so that a crashed `roost up` never leaves a broker or web server on its port.

    Linux only (prctl); elsewhere None, and children outlive a killed supervisor as before.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def arm() -> None:
        # Runs in the child between fork and exec: nothing here may take a lock.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
