"""The platform under test: its own data directory and database, a registry driver and
`manage.py runbroker` processes on free loopback ports, plus TLS clients for devices.

Nothing here mocks the platform: certificates come from `pki`, registry changes go through
the service functions (in `registry_driver.py`, a process of its own on the platform's
database), and the broker is the real management command.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

from broker.mqtt import Connack, Connect, StreamDecoder, encode
from tests.broker.conftest import Client
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]
MANAGE = str(REPO / "manage.py")
DRIVER = str(Path(__file__).with_name("registry_driver.py"))
READY = re.compile(r"metrics on http://")


class RegistryError(Exception):
    """A registry change the platform refused (the driver's error text)."""


# The platform's database ---------------------------------------------------------------------


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


class FreshPostgresDatabase:
    """A database of its own on the server of DATABASE_URL, dropped afterwards."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"roost_it_{uuid.uuid4().hex[:12]}"
        parts = urlsplit(server_url)
        self.url = urlunsplit(parts._replace(path="/" + self.name))

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.server_url, autocommit=True)

    def create(self) -> str:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self.url

    def drop(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Platform:
    """A prepared platform: data directory, database and the registry driver process."""

    def __init__(self, data_dir: Path, secret_key: str) -> None:
        self.data_dir = data_dir
        self.bundles = data_dir / "bundles"
        self.database: FreshPostgresDatabase | None = None
        env = dict(os.environ)
        env.update(
            ROOST_DATA_DIR=str(data_dir), ROOST_BROKER_POLL_MS="50", ROOST_BROKER_FLUSH_MS="100",
            # The same key as the test process, so that bridge tokens signed here verify there.
            ROOST_SECRET_KEY=secret_key, ROOST_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
            # Tests reconnect one device many times a minute (polling for a change to apply);
            # flapping detection has its own test (test_platform_flapping.py).
            ROOST_BROKER_FLAP_MAX="0",
            DJANGO_SETTINGS_MODULE="roost.settings",
        )
        server_url = os.environ.get("DATABASE_URL", "")
        if is_postgres(server_url):
            self.database = FreshPostgresDatabase(server_url)
            env["DATABASE_URL"] = self.database.create()
        else:
            env.pop("DATABASE_URL", None)  # SQLite file in the data directory
        self.env = env
        self._lock = threading.Lock()
        self._driver_log = (data_dir / "driver.log").open("w")
        self._driver = subprocess.Popen(
            [sys.executable, DRIVER], cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._driver_log,
        )

    def call(self, op: str, **args: Any) -> Any:
        """Run one registry operation in the driver; raises RegistryError if it was refused."""
        with self._lock:
            driver = self._driver
            assert driver.stdin is not None and driver.stdout is not None
            driver.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            driver.stdin.flush()
            line = driver.stdout.readline()
        if not line:
            raise RuntimeError("the registry driver died:\n" + (self.data_dir / "driver.log").read_text())
        reply = json.loads(line)
        if not reply["ok"]:
            raise RegistryError(reply["error"])
        return reply["result"]

    def manage(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`python manage.py ARGS` on this platform."""
        return subprocess.run([sys.executable, MANAGE, *args], cwd=REPO, env=self.env, text=True,
                              capture_output=True, timeout=timeout)

    def device(self, tenant: str, name: str) -> Bundle:
        """Register a device and issue its certificate; returns the bundle on disk."""
        self.call("device_create", tenant=tenant, name=name)
        return self.issue(tenant, name)

    def issue(self, tenant: str, name: str) -> Bundle:
        folder = self.bundles / tenant / f"{name}-{uuid.uuid4().hex[:6]}"
        issued = self.call("cert_issue", tenant=tenant, name=name, out=str(folder))
        return Bundle(folder, tenant, name, issued["serial"], issued["fingerprint"])

    def close(self) -> None:
        driver = self._driver
        if driver.poll() is None:
            assert driver.stdin is not None
            driver.stdin.close()
            try:
                driver.wait(10)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait()
        self._driver_log.close()
        if self.database is not None:
            self.database.drop()


@dataclass(frozen=True)
class Bundle:
    """What a device holds: ca.pem (the platform root), device.pem (leaf + issuing CA), device.key."""

    folder: Path
    tenant: str
    name: str
    serial: str
    fingerprint: str

    @property
    def ca(self) -> str:
        return str(self.folder / "ca.pem")

    @property
    def cert(self) -> str:
        return str(self.folder / "device.pem")

    @property
    def key(self) -> str:
        return str(self.folder / "device.key")

    def tls(self) -> dict[str, Any]:
        return {"ca_certs": self.ca, "certfile": self.cert, "keyfile": self.key}


# The broker ----------------------------------------------------------------------------------


class PlatformBroker:
    """`manage.py runbroker` on free loopback ports; restarts keep the ports."""

    def __init__(self, platform: Platform, *, plain: bool = False, wss: bool = False,
                 service: bool = False) -> None:
        self.platform = platform
        self.port = free_port()
        self.bridge_port = free_port()
        self.metrics_port = free_port()
        self.plain_port = free_port() if plain else 0
        self.wss_port = free_port() if wss else 0
        self.service_port = free_port() if service else 0
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self, timeout: float = 30.0) -> PlatformBroker:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, MANAGE, "runbroker", "--port", str(self.port),
             "--bridge-port", str(self.bridge_port), "--metrics-port", str(self.metrics_port),
             "--plain-port", str(self.plain_port), "--wss-port", str(self.wss_port),
             "--connect-timeout", "3", "--sys-interval", "1",
             # Left out when off, so a broker started here has runbroker's default.
             *(["--service-port", str(self.service_port)] if self.service_port else [])],
            cwd=REPO, env=self.platform.env, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        ready = threading.Event()
        proc = self.proc

        log = self.platform.data_dir / "broker.log"

        def read() -> None:
            assert proc.stderr is not None
            with log.open("a") as copy:  # kept for reading after a failure
                for line in proc.stderr:
                    copy.write(line)
                    copy.flush()
                    self.lines.append(line.rstrip("\n"))
                    if READY.search(line):
                        ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or proc.poll() is not None:
            self.kill()
            raise RuntimeError("runbroker did not start:\n" + "\n".join(self.lines))
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, the graceful way; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def restart(self) -> PlatformBroker:
        assert self.stop() == 0, "\n".join(self.lines)
        return self.start()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, frozenset(labels.items())), 0.0)


# The web service -----------------------------------------------------------------------------


class PlatformWeb:
    """The web service (daphne, as `roost up` runs it) on a free loopback port, on the
    platform's database, for tests that drive the REST API against a running broker."""

    def __init__(self, platform: Platform, broker: PlatformBroker | None = None) -> None:
        self.platform = platform
        self.broker = broker
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(self.platform.env, ROOST_WEB_PORT=str(self.port),
                   ROOST_PUBLIC_URL=self.url, ROOST_API_RATE="100000/min")
        if self.broker is not None:
            env["ROOST_BROKER_METRICS_PORT"] = str(self.broker.metrics_port)
            env["ROOST_BROKER_PORT"] = str(self.broker.port)
            env["ROOST_BROKER_BRIDGE_PORT"] = str(self.broker.bridge_port)  # /mqtt relays there
        return env

    def start(self, timeout: float = 30.0) -> PlatformWeb:
        log = (self.platform.data_dir / f"web-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "roost.asgi:application"],
            cwd=REPO, env=self.env(), text=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the web service did not start:\n" + (self.platform.data_dir / f"web-{self.port}.log").read_text())

    def request(self, method: str, path: str, key: str | None = None, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded JSON or raw bytes, headers) of one API call."""
        data = None
        sent = dict(headers or {})
        if key:
            sent["Authorization"] = f"Bearer {key}"
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw, got = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as err:
            status, raw, got = err.code, err.read(), dict(err.headers)
        if got.get("Content-Type", "").startswith("application/json") and raw:
            return status, json.loads(raw), got
        return status, raw, got

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# Device connections --------------------------------------------------------------------------


def device_client(broker: PlatformBroker, bundle: Bundle, *, version: int = 5,
                  client_id: str | None = None) -> Client:
    """A paho client set up to present the device's certificate (not yet connected)."""
    client = Client(broker.port, bundle.name if client_id is None else client_id, version)
    client.client.tls_set(**bundle.tls())
    return client


def bridge_client(broker: PlatformBroker, client_id: str, token: str, *, version: int = 5) -> Client:
    """A paho client for the loopback bridge listener, the signed token as its password."""
    client = Client(broker.bridge_port, client_id, version)
    client.client.username_pw_set("portal", token)
    return client


def service_client(broker: PlatformBroker, key: str, client_id: str, *, version: int = 5,
                   username: str | None = None) -> Client:
    """A paho client for the service listener: server-only TLS, the API key as the password
    and its public prefix as the user name (unless `username` says otherwise)."""
    client = Client(broker.service_port, client_id, version)
    client.client.tls_set(ca_certs=str(broker.platform.data_dir / "pki" / "root-ca.pem"))
    prefix = "_".join(key.split("_")[:2])  # rk_<12 hex>
    client.client.username_pw_set(prefix if username is None else username, key)
    return client


def tls_socket(port: int, ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        # A close without close_notify is an error here: with TLS 1.3 a refused client
        # certificate shows up after the client's side of the handshake, as that close.
        return context.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
    except BaseException:
        sock.close()
        raise


def connack_code(port: int, ca: str, cert: str | None, key: str | None, client_id: str,
                 level: int = 4, username: str | None = None, password: str | None = None) -> int | None:
    """The CONNACK code (3.1.1 return code or 5.0 reason code) exactly as it came off the
    wire, or None when the broker closed without one."""
    with tls_socket(port, ca, cert, key) as sock:
        sock.sendall(encode(Connect(protocol_level=level, client_id=client_id, username=username,
                                    password=None if password is None else password.encode()), level))
        decoder = StreamDecoder(server_side=False, protocol_level=level)
        while True:
            data = sock.recv(65536)
            if not data:
                return None
            for packet in decoder.feed(data):
                if isinstance(packet, Connack):
                    return int(packet.reason_code)


REVOKED_IN_HANDSHAKE = "certificate_revoked alert"


def refusal(port: int, ca: str, cert: str, key: str, client_id: str, level: int = 4) -> int | str | None:
    """What a device meets: REVOKED_IN_HANDSHAKE when TLS refused its certificate as revoked,
    else the CONNACK code (None: closed without one)."""
    try:
        return connack_code(port, ca, cert, key, client_id, level=level)
    except ssl.SSLError as exc:
        if "CERTIFICATE_REVOKED" in str(exc):
            return REVOKED_IN_HANDSHAKE
        raise


def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fails with the last value otherwise.

    A refused TLS handshake or connection counts as "not yet": a change reaches the broker's
    TLS context a moment after the API call that made it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (ssl.SSLError, ConnectionError) as error:
            value = None
            last: object = error
        else:
            last = value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s; last value {last!r}")
        time.sleep(interval)
