"""Broker settings shared by the engine, the network layer and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Listener:
    """One socket to listen on; `tls` listeners use the TLS settings of `BrokerConfig`,
    `websocket` ones carry MQTT over WebSocket (with `tls`: wss)."""

    host: str
    port: int
    tls: bool = False
    name: str = ""
    websocket: bool = False

    def url(self, port: int | None = None) -> str:
        if self.websocket:
            scheme = "wss" if self.tls else "ws"
        else:
            scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host or "*"
        return f"{scheme}://{host}:{self.port if port is None else port}"


@dataclass(slots=True)
class BridgeTopic:
    """What a bridge forwards: `local_prefix + pattern` here, `remote_prefix + pattern` there."""

    pattern: str
    direction: str = "out"  # "out", "in" or "both"
    qos: int = 0
    local_prefix: str = ""
    remote_prefix: str = ""

    @property
    def local_filter(self) -> str:
        return self.local_prefix + self.pattern

    @property
    def remote_filter(self) -> str:
        return self.remote_prefix + self.pattern


@dataclass(slots=True)
class BridgeSettings:
    """One bridge to a remote broker, as a mosquitto.conf `connection` section describes it."""

    name: str
    host: str = ""
    port: int = 1883
    topics: list[BridgeTopic] = field(default_factory=list)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    clean_session: bool = False
    local_clean_session: bool | None = None
    """False: QoS 1/2 messages for the remote are held while it is unreachable; True: they
    are dropped, and so are unacknowledged ones at a disconnect. None: as clean_session."""
    restart_timeout: tuple[float, float] = (5.0, 30.0)
    """Seconds before reconnecting: (base, cap) draws each wait with decorrelated jitter
    from base up to three times the last, at most cap; (n, n) waits n every time."""
    protocol_version: int = 4
    keepalive: int = 60
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False
    notifications: bool = True
    outgoing_retain: bool = True
    """False: messages forwarded to the remote broker go without their RETAIN flag."""
    try_private: bool = True
    """Mosquitto's bridge bit on a 3.1.1 CONNECT (the remote keeps our messages from us)."""
    attempt_unsubscribe: bool = True
    """UNSUBSCRIBE `out` topics at the remote on connect, as Mosquitto does."""


@dataclass(slots=True)
class BrokerConfig:
    """Limits and features; the defaults follow Mosquitto 2.0 where it has one."""

    listeners: list[Listener] = field(default_factory=list)
    max_packet_size: int = 0
    """Largest packet accepted from a client, told to MQTT 5 clients in CONNACK; 0: none of
    our own (MQTT's 268,435,460 bytes, as Mosquitto), and nothing is told."""
    max_queued_messages: int = 1000
    """Per offline or backlogged session; further messages are dropped."""
    max_queued_bytes: int = 64 << 20
    """Per session, as whole PUBLISH packets (topic, properties, payload); 0: no byte limit."""
    max_inflight: int = 20
    """QoS 1/2 messages in flight to one client, and our MQTT 5 receive maximum."""
    max_qos: int = 2
    retain_available: bool = True
    max_keepalive: int = 0
    """Cap on the client's keep alive in seconds (0: no cap); MQTT 5 clients are told."""
    connect_timeout: float = 10.0
    """Seconds from TCP accept until CONNECT is processed, TLS handshake included."""
    max_connections: int = 0
    """0: unlimited."""
    topic_alias_maximum: int = 10
    max_topic_length: int = 65535
    max_topic_levels: int = 201
    invalid_filter_disconnects: bool = True
    """An invalid topic filter in SUBSCRIBE or UNSUBSCRIBE closes the connection as a
    malformed packet (MQTT 5: DISCONNECT 0x81), as Mosquitto does; False answers SUBACK or
    UNSUBACK 0x8F for that filter alone (the platform: a dashboard user's typing mistake
    should not cost the connection)."""
    """Levels in a topic name or filter (Mosquitto's limit: 200 separators)."""
    max_retained: int = 1_000_000
    mount_levels: int = 0
    """Topic levels every mountpoint has (the platform's "{tenant}/" is 1). A `$` topic is
    kept from leading wildcards at the first level and at the first one after the mountpoint."""
    sys_interval: float = 10.0
    """Seconds between $SYS refreshes; 0 disables $SYS topics."""
    persist_dir: str | None = None
    persist_file: str = "roost-broker.json"
    """The snapshot's name in `persist_dir`; the journal's logs take its stem: STEM.N.log."""
    autosave_interval: float = 300.0
    """At durability "none": seconds between snapshots of the persisted state."""
    durability: str = "ack"
    """With a persist directory: "ack" (QoS 1/2 messages, subscriptions, sessions and retained
    messages are on disk before they are acknowledged), "interval" (journaled, written and
    fsynced every `durability_interval`) or "none" (a snapshot every `autosave_interval`
    and at shutdown)."""
    durability_interval: float = 1.0
    journal_compact_bytes: int = 64 << 20
    """Journal size past which it is compacted into a new snapshot."""
    write_high_water: int = 64 * 1024
    """Buffered bytes at which a connection counts as backlogged (publishers to it pause)."""
    max_write_buffer: int = 4 * 1024 * 1024
    """Above this, QoS 0 messages to the connection are dropped; at 4x it is disconnected."""
    write_stall_timeout: float = 30.0
    """A connection backlogged this long without draining is disconnected."""
    slow_client: str = "drop"
    """What a connected client's overflow costs it: "drop" (the messages beyond its write
    buffer and queue limits, counted) or "disconnect" (the connection, with 0x97). The
    publishers are never slowed down either way."""
    max_session_expiry: int = 0
    """Cap on how long a disconnected session is kept, in seconds (0: none). Applies to
    3.1.1 persistent sessions (otherwise kept forever, as Mosquitto's
    persistent_client_expiration) and to MQTT 5 clients asking for more, who are told."""
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    anonymous: bool = False
    password_file: str | None = None
    acl_file: str | None = None
    shutdown_grace: float = 5.0
    client_id_prefix: str = "auto-"
    """Of the identifiers given to clients that connect without one (`auto_id_prefix`)."""
    response_information: str = "response/"
    """Prefix of the response information returned on request (MQTT 5); "" sends none."""
    flap_max: int = 0
    """Flapping detection: more than this many connects of one identity within
    `flap_window` seconds refuse it (CONNACK 0x9F) for `flap_ban` seconds; 0: off."""
    flap_window: float = 60.0
    flap_ban: float = 60.0
    dynsec_file: str | None = None
    """Mosquitto's dynamic security plugin, built in: its JSON file of clients, groups and
    roles, administered over `$CONTROL/dynamic-security/v1`."""
    message_size_limit: int = 0
    """Largest PUBLISH (and will) payload accepted, in bytes; 0: no limit beyond the packet
    size. A larger message is dropped: QoS 1/2 answered with 0x95, a will refused."""
    max_inflight_bytes: int = 0
    """Payload bytes of QoS 1/2 messages in flight to one client; 0: no limit. Further
    messages queue until acknowledgements free room."""
    allow_zero_length_clientid: bool = True
    """False: a CONNECT without client id is refused instead of given a generated one."""
    upgrade_outgoing_qos: bool = False
    """Deliver at the subscription's QoS even when the message was published at a lower one."""
    tls_crl: str | None = None
    """PEM certificate revocation list: revoked client certificates fail the TLS handshake."""
    tls_chain_ca: str | None = None
    """CA file that completes the server's certificate chain without asking clients for a
    certificate (Mosquitto's cafile without require_certificate); `tls_ca` takes precedence."""
    advertise_defaults: bool = False
    """CONNACK also states what MQTT 5 lets a client assume (wildcard, subscription
    identifier and shared subscriptions available), as the platform broker does; off, it
    carries only what differs from the defaults, as Mosquitto's does."""
