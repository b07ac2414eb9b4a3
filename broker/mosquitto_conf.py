"""Read a mosquitto.conf and turn it into `python -m broker` options.

A Mosquitto user can start Roost's standalone broker on the configuration file they have:
`python -m broker --config /etc/mosquitto/mosquitto.conf`. The options Roost has an
equivalent for are translated; options that only change how Mosquitto logs or runs as a
daemon are ignored with a warning; anything that would change who may connect or what
they may do, and that Roost cannot honour, stops the start with the file and line.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from broker.access.listeners import CN, SUBJECT, Security
from broker.config import BridgeSettings, BridgeTopic, Listener
from broker.config_files import ConfigFileError, read_text, significant_lines

# Options with no effect on who may connect or what happens to messages.
IGNORED = {
    "log_dest", "log_type", "log_timestamp", "log_timestamp_format", "log_facility",
    "websockets_log_level", "pid_file", "user", "set_tcp_nodelay",
    "queue_qos0_messages", "http_dir",
    "socket_domain", "websockets_headers_size", "memory_limit", "clientid_prefixes",
    # Bridge options whose Mosquitto meaning needs nothing here.
    "local_clientid", "idle_timeout", "notifications_local_only",
}

# Security options: per listener with `per_listener_settings true`, else for every listener.
_SECURITY = {"allow_anonymous", "password_file", "acl_file"}

# Listener options: they belong to the listener above them.
_LISTENER = {"protocol", "certfile", "keyfile", "cafile", "require_certificate", "bind_address",
             "crlfile", "use_identity_as_username", "use_subject_as_username", "mount_point"}

_DURATION = re.compile(r"^(\d+)([hdwmy])$")
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}


DYNSEC_PLUGIN = "mosquitto_dynamic_security"
"""The one Mosquitto plugin Roost has built in, recognised by its file name."""


def _is_dynsec(path: str) -> bool:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] == DYNSEC_PLUGIN


class ConfigError(ConfigFileError):
    """A mosquitto.conf that Roost cannot run as its author meant."""


@dataclass
class _Listener:
    port: int
    host: str
    line: int
    websockets: bool = False
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    crlfile: str | None = None
    require_certificate: bool = False
    identity: str | None = None
    mount_point: str = ""
    security: Security = field(default_factory=Security)

    def url(self) -> str:
        return Listener(self.host, self.port, bool(self.certfile), websocket=self.websockets).url()


@dataclass
class Translation:
    """The broker options, the bridges, and what was ignored (for a warning at start).

    `security` holds the security options of the whole broker, `listeners` those of each
    listener by name (`Listener.url()`): mount point and certificate identity always, the
    rest with `per_listener_settings true`. `settings` are BrokerConfig fields without a
    command line option.
    """

    args: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    bridges: list[BridgeSettings] = field(default_factory=list)
    security: Security = field(default_factory=Security)
    listeners: dict[str, Security] = field(default_factory=dict)
    per_listener_settings: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


def _bool(value: str, where: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _int(value: str, where: str) -> int:
    if not value.isdigit():
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    return int(value)


def _duration(value: str, where: str) -> int:
    match = _DURATION.match(value)
    if match is None:
        raise ConfigError(f"{where}: expected a duration such as 12h, 7d, 2w, 1m or 1y, got {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _per_listener(text: str, source: str) -> bool:
    """`per_listener_settings` changes the meaning of the lines before it too."""
    for number, line in significant_lines(text):
        name, _, value = line.partition(" ")
        if name == "per_listener_settings":
            return _bool(value.strip(), f"{source}:{number}")
    return False


def translate(text: str, source: str = "mosquitto.conf") -> Translation:
    """The `python -m broker` options that do what `text` asks of Mosquitto 2.0."""
    out = Translation()
    per_listener = out.per_listener_settings = _per_listener(text, source)
    listeners: list[_Listener] = []
    current: _Listener | None = None
    security = out.security
    persistence = False
    location = None
    dynsec: str | None = None
    dynsec_file: str | None = None
    persistence_file = None
    options: list[str] = []
    settings = out.settings
    for number, line in significant_lines(text):
        name, _, value = line.partition(" ")
        value = value.strip()
        where = f"{source}:{number}"
        if name == "connection":
            if not value:
                raise ConfigError(f"{where}: connection NAME")
            out.bridges.append(BridgeSettings(value))
            continue
        if out.bridges and name in _BRIDGE_OPTIONS:
            _bridge_option(out.bridges[-1], name, value, where)
            continue
        if name in _BRIDGE_OPTIONS:
            raise ConfigError(f"{where}: {name} belongs in a bridge, after a connection line")
        if name == "listener":
            parts = value.split()
            if not parts or len(parts) > 2:
                raise ConfigError(f"{where}: listener PORT [ADDRESS]")
            current = _Listener(_int(parts[0], where), parts[1] if len(parts) == 2 else "", number)
            listeners.append(current)
        elif name == "port":
            current = _Listener(_int(value, where), "", number)
            listeners.append(current)
        elif name in _LISTENER:
            if current is None:
                current = _Listener(1883, "", number)  # Mosquitto's default listener
                listeners.append(current)
            _listener_option(current, name, value, where)
        elif name in _SECURITY:
            # Before any listener, per-listener security options set the defaults.
            target = current.security if per_listener and current is not None else security
            if name == "allow_anonymous":
                target.anonymous = _bool(value, where)
            elif name == "password_file":
                target.password_file = value
            else:
                target.acl_file = value
        elif name == "auto_id_prefix":
            settings["client_id_prefix"] = value
        elif name == "allow_zero_length_clientid":
            # Also a security option in Mosquitto; here it holds for every listener.
            settings["allow_zero_length_clientid"] = _bool(value, where)
        elif name == "persistence":
            persistence = _bool(value, where)
        elif name == "persistence_location":
            location = value
        elif name == "persistence_file":
            persistence_file = value
        elif name == "autosave_interval":
            options += ["--autosave-interval", str(_int(value, where))]
        elif name == "max_queued_messages":
            options += ["--max-queued-messages", str(_int(value, where))]
        elif name == "max_queued_bytes":
            options += ["--max-queued-bytes", str(_int(value, where))]
        elif name == "max_inflight_messages":
            options += ["--max-inflight", str(_int(value, where) or 65535)]  # 0: no limit
        elif name == "max_inflight_bytes":
            settings["max_inflight_bytes"] = _int(value, where)
        elif name == "max_packet_size":
            options += ["--max-packet-size", str(_int(value, where))]
        elif name == "message_size_limit":
            settings["message_size_limit"] = _int(value, where)
        elif name == "max_keepalive":
            options += ["--max-keepalive", str(_int(value, where))]
        elif name == "max_connections":
            count = int(value) if value.lstrip("-").isdigit() else _int(value, where)
            options += ["--max-connections", str(max(count, 0))]  # -1: no limit
        elif name == "persistent_client_expiration":
            options += ["--max-session-expiry", str(_duration(value, where))]
        elif name == "sys_interval":
            options += ["--sys-interval", str(_int(value, where))]
        elif name in ("max_qos", "maximum_qos"):
            qos = _int(value, where)
            if qos > 2:
                raise ConfigError(f"{where}: {name} 0, 1 or 2, got {value!r}")
            options += ["--max-qos", str(qos)]
        elif name == "max_topic_alias":
            options += ["--topic-alias-maximum", str(min(_int(value, where), 65535))]
        elif name == "retain_available":
            settings["retain_available"] = _bool(value, where)
        elif name == "upgrade_outgoing_qos":
            settings["upgrade_outgoing_qos"] = _bool(value, where)
        elif name == "check_retain_source":
            # Roost always holds a retained message to its publisher's current rights (the
            # publisher is kept with it on disk too).
            if not _bool(value, where):
                out.ignored.append(f"{where}: check_retain_source false (always checked here)")
        elif name == "connection_messages":
            options.append("--connection-messages" if _bool(value, where) else "--no-connection-messages")
        elif name in ("plugin", "auth_plugin"):
            if not _is_dynsec(value):
                raise ConfigError(f"{where}: {name} {value}: Roost cannot load C plugins; the "
                                  f"only one built in is {DYNSEC_PLUGIN}.so (dynamic security)")
            dynsec = where
        elif name in ("plugin_opt_config_file", "auth_opt_config_file"):
            dynsec_file = value
        elif name.startswith(("plugin_opt_", "auth_opt_")):
            out.ignored.append(f"{where}: {name}")
        elif name == "per_listener_settings":
            pass  # read first, by _per_listener
        elif name in IGNORED:
            out.ignored.append(f"{where}: {name}")
        else:
            raise ConfigError(f"{where}: {name!r} is not supported (PSK files and their "
                              "options have no equivalent)")
    for bridge in out.bridges:
        if not bridge.host:
            raise ConfigError(f"{source}: bridge {bridge.name!r} has no address")
        if not bridge.topics:
            raise ConfigError(f"{source}: bridge {bridge.name!r} has no topic line")
    tls = {(lst.certfile, lst.keyfile, lst.cafile if lst.require_certificate else None, lst.crlfile)
           for lst in listeners if lst.certfile}
    chain = {lst.cafile for lst in listeners if lst.certfile and lst.cafile and not lst.require_certificate}
    if len(tls) > 1:
        raise ConfigError(f"{source}: TLS listeners with different certificates are not supported")
    for lst in listeners:
        if bool(lst.certfile) != bool(lst.keyfile):
            raise ConfigError(f"{source}:{lst.line}: a TLS listener needs both certfile and keyfile")
        scheme = {(False, False): "", (True, False): "tls://", (False, True): "ws://",
                  (True, True): "wss://"}[(bool(lst.certfile), lst.websockets)]
        host = f"[{lst.host}]" if ":" in lst.host else lst.host
        out.args += ["--bind", f"{scheme}{host}:{lst.port}"]
        own = lst.security if per_listener else replace(security)
        own.identity, own.mount_point = lst.identity, lst.mount_point
        out.listeners[lst.url()] = own
    if tls:
        certfile, keyfile, cafile, crlfile = tls.pop()
        out.args += ["--tls-cert", str(certfile), "--tls-key", str(keyfile)]
        if cafile:
            out.args += ["--tls-ca", cafile]
        if crlfile:
            settings["tls_crl"] = crlfile
        if not cafile and len(chain) == 1:
            # Mosquitto sends the intermediates its cafile holds, asking nothing of clients.
            settings["tls_chain_ca"] = chain.pop()
    if dynsec is not None:
        if not dynsec_file:
            raise ConfigError(f"{dynsec}: the dynamic security plugin needs "
                              "plugin_opt_config_file")
        options += ["--dynsec-file", dynsec_file]
    elif dynsec_file is not None:
        raise ConfigError(f"{source}: plugin_opt_config_file without a plugin line")
    if security.anonymous is None and not per_listener:
        # Mosquitto 2.0's "local only mode": no listener configured means 127.0.0.1:1883
        # (our default too) open to anonymous clients.
        security.anonymous = not listeners and security.password_file is None and dynsec is None
    if security.anonymous:
        out.args.append("--anonymous")
    if persistence:
        directory, name = location or ".", ""
        if persistence_file:
            # Roost's snapshot takes the name (a Mosquitto database there is refused at start,
            # never overwritten), its journal the name without the extension.
            path = os.path.join(location or "", persistence_file)
            directory = os.path.dirname(path) or "."
            name = os.path.basename(path)
            if not name:
                raise ConfigError(f"{source}: persistence_file {persistence_file!r} names no file")
        out.args += ["--persist", directory]
        if name:
            out.args += ["--persist-file", name]
    if not per_listener:
        if security.password_file:
            out.args += ["--password-file", security.password_file]
        if security.acl_file:
            out.args += ["--acl-file", security.acl_file]
    out.args += options
    return out


def _listener_option(lst: _Listener, name: str, value: str, where: str) -> None:
    if name == "protocol":
        if value not in ("mqtt", "websockets"):
            raise ConfigError(f"{where}: protocol {value!r} is not offered (mqtt, websockets)")
        lst.websockets = value == "websockets"
    elif name == "require_certificate":
        lst.require_certificate = _bool(value, where)
    elif name == "bind_address":
        lst.host = value
    elif name == "use_identity_as_username":
        if _bool(value, where):
            lst.identity = CN
    elif name == "use_subject_as_username":
        if _bool(value, where):
            lst.identity = SUBJECT
    elif name == "mount_point":
        lst.mount_point = value
    else:
        setattr(lst, name, value)


_BRIDGE_OPTIONS = {
    "address", "addresses", "topic", "remote_username", "remote_password", "remote_clientid",
    "cleansession", "bridge_protocol_version", "keepalive_interval", "notifications",
    "bridge_cafile", "bridge_certfile", "bridge_keyfile", "bridge_insecure", "start_type",
    "bridge_outgoing_retain",
    "try_private", "bridge_attempt_unsubscribe", "local_cleansession", "restart_timeout",
}


def _bridge_option(bridge: BridgeSettings, name: str, value: str, where: str) -> None:
    if name in ("address", "addresses"):
        first = value.split()[0] if value.split() else ""
        if len(value.split()) > 1:
            raise ConfigError(f"{where}: one bridge address only (no fail-over list)")
        host, _, port = first.rpartition(":") if ":" in first else (first, "", "1883")
        if not host or not port.isdigit():
            raise ConfigError(f"{where}: address HOST[:PORT], got {value!r}")
        bridge.host, bridge.port = host, int(port)
    elif name == "topic":
        bridge.topics.append(_bridge_topic(value, where))
    elif name == "remote_username":
        bridge.username = value
    elif name == "remote_password":
        bridge.password = value
    elif name == "remote_clientid":
        bridge.client_id = value
    elif name == "cleansession":
        bridge.clean_session = _bool(value, where)
    elif name == "local_cleansession":
        bridge.local_clean_session = _bool(value, where)
    elif name == "restart_timeout":
        bridge.restart_timeout = _restart_timeout(value, where)
    elif name == "notifications":
        bridge.notifications = _bool(value, where)
    elif name == "keepalive_interval":
        bridge.keepalive = _int(value, where)
    elif name == "bridge_protocol_version":
        versions = {"mqttv311": 4, "mqttv50": 5}
        if value not in versions:
            raise ConfigError(f"{where}: bridge_protocol_version mqttv311 or mqttv50, got {value!r}")
        bridge.protocol_version = versions[value]
    elif name == "bridge_insecure":
        bridge.insecure = _bool(value, where)
    elif name == "bridge_outgoing_retain":
        bridge.outgoing_retain = _bool(value, where)
    elif name == "try_private":
        bridge.try_private = _bool(value, where)
    elif name == "bridge_attempt_unsubscribe":
        bridge.attempt_unsubscribe = _bool(value, where)
    elif name == "start_type":
        if value != "automatic":
            raise ConfigError(f"{where}: only start_type automatic is supported")
    else:
        setattr(bridge, name.removeprefix("bridge_"), value)


def _restart_timeout(value: str, where: str) -> tuple[float, float]:
    """`restart_timeout SECONDS` (constant) or `restart_timeout BASE CAP` (backoff)."""
    words = value.split()
    if not 1 <= len(words) <= 2 or not all(w.isdigit() for w in words):
        raise ConfigError(f"{where}: restart_timeout SECONDS or restart_timeout BASE CAP, got {value!r}")
    base = max(1, int(words[0]))  # Mosquitto raises anything lower to one second
    cap = int(words[1]) if len(words) == 2 else base
    if cap < base:
        raise ConfigError(f"{where}: the restart_timeout cap {cap} is lower than its base {base}")
    return float(base), float(cap)


def _bridge_topic(value: str, where: str) -> BridgeTopic:
    """`topic PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`; "" is empty."""
    try:
        words = shlex.split(value)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if not words or len(words) > 5 or len(words) == 4:
        raise ConfigError(f"{where}: topic PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]")
    topic = BridgeTopic(words[0])
    if len(words) > 1:
        if words[1] not in ("out", "in", "both"):
            raise ConfigError(f"{where}: direction out, in or both, got {words[1]!r}")
        topic.direction = words[1]
    if len(words) > 2:
        if words[2] not in ("0", "1", "2"):
            raise ConfigError(f"{where}: QoS 0, 1 or 2, got {words[2]!r}")
        topic.qos = int(words[2])
    if len(words) == 5:
        topic.local_prefix, topic.remote_prefix = words[3], words[4]
    if not (topic.pattern or topic.local_prefix or topic.remote_prefix):
        raise ConfigError(f"{where}: an empty pattern needs prefixes")
    return topic


def read(path: str | Path) -> Translation:
    return translate(read_text(path, ConfigError), str(path))
