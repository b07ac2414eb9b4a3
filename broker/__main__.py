"""`python -m broker`: the standalone Roost MQTT broker (no database)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import logging.handlers
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from broker import connection_log, mosquitto_conf
from broker.access.aclfile import AclFile
from broker.access.dynsec import DynamicSecurity, DynsecFileError
from broker.access.listeners import ListenerSecurity, Security, SecuritySet
from broker.access.passwords import (
    AccessFileError,
    IdentityAuthenticator,
    PasswordAuthenticator,
    PasswordFile,
)
from broker.config import BridgeSettings, BrokerConfig, Listener
from broker.engine.broker import Broker
from broker.engine.interfaces import AllowAll, Authenticator, Authorizer, Store
from broker.engine.journal import NONE, Journal
from broker.engine.operations import Admin
from broker.engine.store import FileStore, StoreError
from broker.net.bridge import Bridge
from broker.net.listener import Server

logger = logging.getLogger("broker")

LOG_FLUSH_INTERVAL = 0.2
"""Seconds an INFO line may wait in the log batch; warnings and errors go out at once."""


SCHEMES = {"mqtt": (False, False), "tcp": (False, False), "tls": (True, False),
           "mqtts": (True, False), "ws": (False, True), "wss": (True, True)}


def _listener(value: str) -> Listener:
    tls = websocket = False
    scheme, sep, rest = value.partition("://")
    if sep:
        if scheme not in SCHEMES:
            raise argparse.ArgumentTypeError(f"unknown scheme {scheme!r}: use tls://, ws:// or wss://")
        tls, websocket = SCHEMES[scheme]
        value = rest
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected [SCHEME://]HOST:PORT, got {value!r}")
    host = host.strip("[]")  # empty: every address, IPv4 and IPv6, as Mosquitto's listeners
    if not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return Listener(host, int(port), tls, websocket=websocket)


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = kind(value)
        if number < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {value}")
        return number

    return parse


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(value: str) -> float:
    """Seconds, or a number with s, m or h: "90", "60s", "5m"."""
    text = value.strip().lower()
    unit = _UNITS.get(text[-1:], 0.0)
    try:
        number = float(text[:-1] if unit else text) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 60s or 5m, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number


def _file_name(value: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise argparse.ArgumentTypeError(f"expected a file name without a directory, got {value!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = BrokerConfig()
    p = argparse.ArgumentParser(
        prog="python -m broker",
        description="Roost MQTT broker (MQTT 3.1, 3.1.1 and 5.0), standalone: no database. "
        "Refuses to start unless clients must authenticate (--password-file, or --tls-ca "
        "with tls:// listeners only) or --anonymous is given. SIGHUP reloads the password "
        "and ACL files.",
    )
    p.add_argument("--config", metavar="MOSQUITTO_CONF",
                   help="read a mosquitto.conf (Mosquitto 2.0 options: listeners, websockets, "
                   "TLS, password and ACL files, persistence, limits); options given here as "
                   "well come after it and win")
    p.add_argument("--bind", action="append", type=_listener, metavar="[SCHEME://]HOST:PORT",
                   help="listen here; repeatable; tls:// for MQTT over TLS, ws:// and wss:// for "
                   "MQTT over WebSocket (any path) (default 127.0.0.1:1883)")
    p.add_argument("--anonymous", action="store_true",
                   help="accept clients without credentials; without --acl-file every client "
                   "may use every topic (development, tests)")
    p.add_argument("--password-file", metavar="FILE",
                   help="users and password hashes made with mosquitto_passwd; clients must "
                   "log in with one (unless --anonymous)")
    p.add_argument("--acl-file", metavar="FILE",
                   help="topic access in Mosquitto's acl_file format (topic, user, pattern "
                   "with %%u and %%c); everything it does not grant is denied")
    p.add_argument("--dynsec-file", metavar="JSON",
                   help="Mosquitto's dynamic security plugin, built in: clients, groups and "
                   "roles from this file (made by `mosquitto_ctrl dynsec init`), changed live "
                   "over $CONTROL/dynamic-security/v1 and saved back to it")
    p.add_argument("--tls-cert", metavar="PEM", help="server certificate chain for TLS listeners")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--tls-ca", metavar="PEM",
                   help="CA bundle; TLS clients must present a certificate it signed")
    p.add_argument("--persist", metavar="DIR",
                   help="keep retained messages and persistent sessions in DIR across restarts")
    p.add_argument("--persist-file", type=_file_name, metavar="NAME", default=defaults.persist_file,
                   help="the snapshot's file name in the --persist directory; the journal's "
                   "logs are named after it, without its extension (default %(default)s)")
    p.add_argument("--autosave-interval", type=_positive(float), metavar="SECONDS",
                   default=defaults.autosave_interval,
                   help="with --persist --durability none, also save this often (0: only "
                   "at shutdown; default %(default)s)")
    p.add_argument("--durability", choices=("ack", "interval", "none"),
                   default=defaults.durability,
                   help="with --persist: 'ack' acknowledges QoS 1/2 messages, subscriptions, "
                   "sessions and retained messages of persistent sessions only once they are "
                   "on disk (journal, group commit); 'interval' journals them and syncs every "
                   "--durability-interval; 'none' saves a snapshot at shutdown and every "
                   "--autosave-interval, so a crash loses what came since (default "
                   "%(default)s)")
    p.add_argument("--durability-interval", type=_positive(float), metavar="SECONDS",
                   default=defaults.durability_interval,
                   help="with --durability interval, seconds between journal syncs "
                   "(default %(default)s)")
    p.add_argument("--max-packet-size", type=_positive(int), metavar="BYTES",
                   default=defaults.max_packet_size,
                   help="largest packet accepted from a client, told to MQTT 5 clients; "
                   "0 (default): MQTT's maximum, not told, as Mosquitto")
    p.add_argument("--max-queued-messages", type=_positive(int), metavar="N",
                   default=defaults.max_queued_messages,
                   help="QoS 1/2 messages queued per session; newer ones are dropped when "
                   "full (default %(default)s)")
    p.add_argument("--max-queued-bytes", type=_positive(int), metavar="BYTES",
                   default=defaults.max_queued_bytes,
                   help="bytes queued per session, counted as whole PUBLISH packets, 0 for "
                   "no limit (default %(default)s)")
    p.add_argument("--max-inflight", type=_positive(int), metavar="N",
                   default=defaults.max_inflight,
                   help="unacknowledged QoS 1/2 messages per direction per client; also the "
                   "MQTT 5 receive maximum (default %(default)s)")
    p.add_argument("--max-qos", type=int, choices=(0, 1, 2), default=defaults.max_qos,
                   help="highest QoS accepted and granted (default %(default)s)")
    p.add_argument("--max-keepalive", type=_positive(int), metavar="SECONDS",
                   default=defaults.max_keepalive,
                   help="cap on client keep alive, told to MQTT 5 clients (0: no cap)")
    p.add_argument("--max-session-expiry", type=_positive(int), metavar="SECONDS",
                   default=defaults.max_session_expiry,
                   help="forget a disconnected session after this long: 3.1.1 persistent "
                   "sessions (Mosquitto's persistent_client_expiration) and MQTT 5 sessions "
                   "asking for longer, who are told in CONNACK (0: no cap)")
    p.add_argument("--connect-timeout", type=_positive(float), metavar="SECONDS",
                   default=defaults.connect_timeout,
                   help="time allowed from accept to a processed CONNECT, TLS handshake "
                   "included (default %(default)s)")
    p.add_argument("--max-connections", type=_positive(int), metavar="N",
                   default=defaults.max_connections,
                   help="connections accepted at once, 0 for no limit")
    p.add_argument("--max-write-buffer", type=_positive(int), metavar="BYTES",
                   default=defaults.max_write_buffer,
                   help="bytes buffered for a slow client before its QoS 0 messages are "
                   "dropped; at four times this it is disconnected (default %(default)s)")
    p.add_argument("--write-stall-timeout", type=_positive(float), metavar="SECONDS",
                   default=defaults.write_stall_timeout,
                   help="disconnect a client that reads nothing for this long while "
                   "messages wait for it (default %(default)s)")
    p.add_argument("--slow-client", choices=("drop", "disconnect"), default=defaults.slow_client,
                   help="a client whose socket is backed up past --max-write-buffer and whose "
                   "queue is full: drop what does not fit (counted in "
                   "$SYS/broker/messages/dropped), or disconnect it with 0x97; publishers "
                   "are never slowed down (default %(default)s)")
    p.add_argument("--topic-alias-maximum", type=_positive(int), metavar="N",
                   default=defaults.topic_alias_maximum,
                   help="topic aliases an MQTT 5 client may use (default %(default)s)")
    p.add_argument("--flap-max", type=_positive(int), metavar="N", default=defaults.flap_max,
                   help="flapping detection: more than N connects of one client id within "
                   "--flap-window refuse it (CONNACK 0x9F) for --flap-ban; 0 (default) is off")
    p.add_argument("--flap-window", type=_duration, metavar="DURATION", default=defaults.flap_window,
                   help="e.g. 60s, 2m (default %(default)ss)")
    p.add_argument("--flap-ban", type=_duration, metavar="DURATION", default=defaults.flap_ban,
                   help="how long a flapping client id is refused, e.g. 60s, 5m (default %(default)ss)")
    p.add_argument("--sys-interval", type=_positive(float), metavar="SECONDS",
                   default=defaults.sys_interval,
                   help="seconds between $SYS/broker/# updates, 0 to disable "
                   "(default %(default)s)")
    p.add_argument("--connection-messages", action=argparse.BooleanOptionalAction, default=True,
                   help="log every client that connects, disconnects or is refused, as "
                   "Mosquitto does (default on)")
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO")
    return p


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    return BrokerConfig(
        listeners=args.bind or [Listener("127.0.0.1", 1883)],
        max_packet_size=int(args.max_packet_size),
        max_queued_messages=int(args.max_queued_messages),
        max_queued_bytes=int(args.max_queued_bytes),
        max_inflight=max(1, min(int(args.max_inflight), 65535)),
        max_qos=args.max_qos,
        max_keepalive=min(int(args.max_keepalive), 65535),
        max_session_expiry=min(int(args.max_session_expiry), 0xFFFFFFFE),
        connect_timeout=args.connect_timeout,
        max_connections=int(args.max_connections),
        max_write_buffer=int(args.max_write_buffer),
        write_stall_timeout=args.write_stall_timeout,
        slow_client=args.slow_client,
        topic_alias_maximum=min(int(args.topic_alias_maximum), 65535),
        sys_interval=args.sys_interval,
        persist_dir=args.persist,
        persist_file=args.persist_file,
        autosave_interval=args.autosave_interval,
        durability=args.durability,
        durability_interval=args.durability_interval,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        anonymous=args.anonymous,
        password_file=args.password_file,
        acl_file=args.acl_file,
        flap_max=int(args.flap_max),
        flap_window=args.flap_window,
        flap_ban=args.flap_ban,
        dynsec_file=args.dynsec_file,
    )


def check_secure(config: BrokerConfig, authentication: bool = True) -> str | None:
    """Why this configuration must not start, or None; `authentication`: whether a broker
    nobody could log in to (or everybody could, unasked) counts as a mistake."""
    has_tls = any(listener.tls for listener in config.listeners)
    if has_tls and not (config.tls_cert and config.tls_key):
        return "a tls:// listener needs --tls-cert and --tls-key"
    if not authentication or config.anonymous or config.password_file or config.dynsec_file:
        return None
    if not config.tls_ca:
        return ("refusing to start without authentication: pass --password-file or --tls-ca "
                "(client certificates on tls:// listeners), or --anonymous for an open broker")
    if not has_tls or any(not listener.tls for listener in config.listeners):
        return "with client certificates only (--tls-ca), every listener must be tls:// or wss://"
    return None


class AccessControl:
    """Who may connect and what they may do, from the command line and the access files.

    With `listeners` (from a mosquitto.conf) every listener has its own security set: the
    command line's for all of them, with each listener's mount point and certificate
    identity, or, with `per_listener_settings`, the listener's own options.
    """

    def __init__(self, config: BrokerConfig, listeners: dict[str, Security] | None = None,
                 per_listener_settings: bool = False) -> None:
        self.passwords_files: list[PasswordFile] = []
        self.acls: list[AclFile] = []
        self.authenticator: Authenticator
        self.authorizer: Authorizer
        if listeners is not None:
            self._from_listeners(config, listeners, per_listener_settings)
            return
        passwords = PasswordFile(config.password_file) if config.password_file else None
        acl = AclFile(config.acl_file) if config.acl_file else None
        if passwords is not None:
            self.passwords_files.append(passwords)
            self.authenticator = PasswordAuthenticator(passwords, config.anonymous)
        elif acl is not None or not config.anonymous:
            self.authenticator = IdentityAuthenticator(config.anonymous)
        else:
            self.authenticator = AllowAll()
        # Without an ACL file, AllowAll lets the engine skip authorization entirely.
        self.authorizer = acl if acl is not None else AllowAll()
        if acl is not None:
            self.acls.append(acl)
        self._with_dynsec(config)

    def _from_listeners(self, config: BrokerConfig, listeners: dict[str, Security],
                        per_listener_settings: bool) -> None:
        default = Security(config.anonymous, config.password_file, config.acl_file)
        sets = {}
        for name, own in listeners.items():
            if not per_listener_settings:
                own = replace(default, identity=own.identity, mount_point=own.mount_point)
            sets[name] = SecuritySet(own)
        security = ListenerSecurity(SecuritySet(default), sets)
        self.authenticator = security
        everything = security.sets()
        self.passwords_files = [s.passwords for s in everything if s.passwords is not None]
        self.acls = [s.acl for s in everything if s.acl is not None]
        # Without any ACL file, AllowAll lets the engine skip authorization entirely.
        self.authorizer = security if self.acls else AllowAll()
        self._with_dynsec(config)

    def _with_dynsec(self, config: BrokerConfig) -> None:
        self.dynsec: DynamicSecurity | None = None
        if config.dynsec_file:
            # The plugin decides first; what it does not know is left to the files.
            self.dynsec = DynamicSecurity(
                config.dynsec_file, config.anonymous,
                self.authenticator if self.passwords_files else None,
                self.authorizer if self.acls else None)
            self.authenticator = self.authorizer = self.dynsec

    @property
    def has_files(self) -> bool:
        return bool(self.passwords_files or self.acls)

    def reload(self, broker: Broker) -> None:
        """Read the files again; the old ones stay in force if a new one is broken."""
        try:
            for passwords in self.passwords_files:
                passwords.load()
            for acl in self.acls:
                acl.load()
        except AccessFileError as error:
            logger.error("reload failed, keeping the previous files: %s", error)
            return
        dropped = Admin(broker).recheck_subscriptions() if self.acls else 0
        logger.info("reloaded the access files; %d subscription(s) no longer allowed were dropped",
                    dropped)


def open_store(config: BrokerConfig) -> Store | None:
    """The store `--persist` and `--durability` ask for."""
    if not config.persist_dir:
        return None
    if config.durability == NONE:
        return FileStore(config.persist_dir, config.persist_file)
    return Journal(config.persist_dir, config.durability, config.durability_interval,
                   config.journal_compact_bytes, config.persist_file)


async def serve(config: BrokerConfig, access: AccessControl, connection_messages: bool = True,
                log_batch: logging.Handler | None = None,
                bridges: Sequence[BridgeSettings] = ()) -> int:
    loop = asyncio.get_running_loop()
    if log_batch is not None:
        _flush_logs_periodically(loop, log_batch)
    store = open_store(config)
    broker = Broker(config, loop, access.authenticator, access.authorizer, store)
    if connection_messages:
        connection_log.install(broker.hooks)
    if access.dynsec is not None:
        access.dynsec.attach(broker)
    try:
        broker.start()
    except StoreError as error:
        logger.error("cannot load the persisted state: %s", error)
        return 1
    if (access.acls or access.dynsec is not None) and broker.sessions:
        # Restored sessions are held to the ACL file as it is now, before anyone reconnects.
        dropped = Admin(broker).recheck_subscriptions()
        if dropped:
            logger.info("dropped %d restored subscription(s) the ACL file no longer allows", dropped)
    server = Server(config, broker)
    try:
        await server.start()
    except (OSError, ValueError) as error:
        logger.error("cannot listen: %s", error)
        broker.stop()
        return 1
    running = [Bridge(broker, settings) for settings in bridges]
    for bridge in running:
        bridge.start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if access.has_files:
        try:
            loop.add_signal_handler(signal.SIGHUP, access.reload, broker)
        except NotImplementedError:  # an event loop without signal handlers
            logger.warning("SIGHUP cannot be handled here: the password and ACL files are read "
                           "at start only")
    await stop.wait()
    logger.info("shutting down")
    for bridge in running:
        await bridge.stop()
    await server.shutdown()
    logger.info("stopped")
    return 0


def configure_logging(level: str) -> logging.handlers.MemoryHandler:
    """Log to stderr in batches.

    With connection messages on, a write (and flush) per line cost a third of the time it
    takes to accept a client; batched, lines go out every LOG_FLUSH_INTERVAL, at once from
    WARNING up, and at exit. The format uses no caller, thread or process fields, so they
    are not collected either (the caller lookup walks the stack for every record).
    """
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    batch = logging.handlers.MemoryHandler(1024, logging.WARNING, stream)
    root = logging.getLogger()
    root.addHandler(batch)
    root.setLevel(level)
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return batch


def _flush_logs_periodically(loop: asyncio.AbstractEventLoop, batch: logging.Handler) -> None:
    batch.flush()
    loop.call_later(LOG_FLUSH_INTERVAL, _flush_logs_periodically, loop, batch)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    ignored: list[str] = []
    bridges: list[BridgeSettings] = []
    translation = None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    if known.config:
        try:
            translation = mosquitto_conf.read(known.config)
        except mosquitto_conf.ConfigError as error:
            parser.error(str(error))
        argv = [*translation.args, *rest]
        ignored = translation.ignored
        bridges = translation.bridges
    args = parser.parse_args(argv)
    config = config_from_args(args)
    if translation is not None:
        for name, value in translation.settings.items():
            setattr(config, name, value)
    # A mosquitto.conf listener without credentials starts and refuses every client, as
    # Mosquitto 2.0 does; on the command line that is taken for a mistake.
    problem = check_secure(config, authentication=translation is None)
    if problem:
        parser.error(problem)
    try:
        if translation is None:
            access = AccessControl(config)
        else:
            access = AccessControl(config, translation.listeners, translation.per_listener_settings)
    except (AccessFileError, DynsecFileError) as error:
        parser.error(str(error))
    log_batch = configure_logging(args.log_level)
    for option in ignored:
        logger.warning("ignored (no effect here): %s", option)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(config, access, args.connection_messages, log_batch, bridges))


if __name__ == "__main__":
    sys.exit(main())
