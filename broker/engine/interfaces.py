"""The seams through which the platform plugs into the broker engine.

Everything here is small and typed on purpose: the Django integration implements
`Authenticator`, `Authorizer` and `Store`, subscribes to `EventHooks`, and drives the
running broker through `broker.engine.operations.Admin`. Topics handed to the authorizer and
the hooks are the client's own view, without the principal's mountpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from broker.engine.message import Message
    from broker.engine.store import Snapshot


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection authenticated as.

    `mountpoint` is a topic prefix (e.g. "t/acme/") the engine puts in front of every topic
    the client uses and strips from every topic it receives, so tenants never share a topic
    space. It is "" for the standalone broker.
    """

    name: str
    mountpoint: str = ""
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What is known about a connection when its CONNECT arrives."""

    client_id: str
    username: str | None
    password: bytes | None
    protocol_level: int
    peer_certificates: tuple[bytes, ...]
    """The peer's certificate chain, DER encoded, leaf first; empty without client TLS."""
    listener: str
    remote_address: tuple[str, int] | None


class Authenticator(Protocol):
    """Turns connection facts into a Principal, or an MQTT 5 CONNACK reason code to refuse.

    May return an awaitable; the engine holds the connection's later packets until it
    resolves. Refusal codes are mapped to MQTT 3.1.1 return codes for older clients.
    """

    def authenticate(
        self, facts: ConnectionFacts
    ) -> Principal | int | Awaitable[Principal | int]: ...


class Action(enum.Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    ALLOW_FILTERED = "allow_filtered"
    """Subscriptions only: accept the filter but ask `allow_delivery` for each message."""


class Authorizer(Protocol):
    """Decides what a principal may publish and subscribe to; must not block."""

    def authorize(
        self, principal: Principal, action: Action, topic: str, qos: int, retain: bool
    ) -> Decision: ...

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        """Per-message check for subscriptions granted with ALLOW_FILTERED."""
        ...

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        """The QoS an allowed subscription gets: the request, or lower if the rules cap it."""
        ...


BROKER_TOPICS = "$SYS"
"""The broker's own topics: no client ever publishes into them [MQTT 4.7.2]."""


def is_broker_topic(topic: str) -> bool:
    return topic.startswith(BROKER_TOPICS) and (len(topic) == 4 or topic[4] == "/")


def is_bridge_state(topic: str) -> bool:
    """`$SYS/broker/connection/+/state`, where a bridge tells its remote whether it is up:
    the one `$SYS` topic Mosquitto lets clients publish to (ACLs still apply)."""
    parts = topic.split("/")
    return (len(parts) == 5 and parts[0] == "$SYS" and parts[1] == "broker"
            and parts[2] == "connection" and parts[4] == "state")


def authorize_publish(
    authorizer: Authorizer, principal: Principal, topic: str, qos: int, retain: bool
) -> Decision:
    """A PUBLISH or will of a client: `$SYS` is refused whatever the authorizer says, bridge
    state topics excepted.

    The engine calls this for every topic starting with "$" even when the authorizer is
    AllowAll, so the standalone broker refuses `$SYS` too.
    """
    if topic[:1] == "$" and is_broker_topic(topic) and not is_bridge_state(topic):
        return Decision.DENY
    return authorizer.authorize(principal, Action.PUBLISH, topic, qos, retain)


def may_still_publish(authorizer: Authorizer, publisher: Principal, topic: str, qos: int) -> bool:
    """Whether the publisher of a retained message would be allowed to publish it now.

    `topic` is the publisher's view (without its mountpoint). An authorizer may offer
    `may_publish_retained` to answer for a principal whose connection is long gone (the
    platform's re-derives its rights from the current identity and rules); otherwise its
    ordinary publish decision is asked.
    """
    if topic[:1] == "$" and is_broker_topic(topic) and not is_bridge_state(topic):
        return False
    check = getattr(authorizer, "may_publish_retained", None)
    if check is not None:
        return bool(check(publisher, topic, qos))
    return authorizer.authorize(publisher, Action.PUBLISH, topic, qos, True) is Decision.ALLOW


def may_unsubscribe(authorizer: Authorizer, principal: Principal, topic_filter: str) -> bool:
    """Whether a client may remove a subscription: an authorizer may offer
    `may_unsubscribe` (Mosquitto's dynamic security has unsubscribe ACLs); others allow it."""
    check = getattr(authorizer, "may_unsubscribe", None)
    return check is None or bool(check(principal, topic_filter))


class Store(Protocol):
    """Durable home of retained messages and persistent sessions.

    The engine calls `load` once at start and `save` with a full snapshot periodically and
    at shutdown; implementations may diff snapshots to write only what changed.
    """

    def load(self) -> Snapshot: ...

    def save(self, snapshot: Snapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A connection as reported to hooks and by the admin API."""

    client_id: str
    principal: Principal
    protocol_level: int
    listener: str
    remote_address: tuple[str, int] | None
    clean_start: bool
    keep_alive: int


def format_address(address: tuple[str, int] | None, missing: str = "?") -> str:
    """A remote address as host:port, an IPv6 host in brackets."""
    if address is None:
        return missing
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


LOGGED_TEXT_LIMIT = 200


def format_client_text(text: str | None) -> str:
    """A client-chosen string (client id, user name) for a log line: quoted, and cut short.

    Client ids may be 65,535 bytes long; written whole, a few connections fill a pipe
    reader's buffer (the log is written from the event loop) and swell the log.
    """
    if text is None:
        return "None"
    if len(text) <= LOGGED_TEXT_LIMIT:
        return repr(text)
    return f"{text[:LOGGED_TEXT_LIMIT]!r}… ({len(text)} characters)"


ConnectedHook = Callable[[ClientInfo], None]
DisconnectedHook = Callable[[ClientInfo, int], None]
PublishedHook = Callable[["Principal | None", "Message"], "bool | None"]
ControlHook = Callable[[Principal, bytes], None]

CONTROL_TOPICS = "$CONTROL/"
"""Requests to a broker feature (Mosquitto's `$CONTROL/<feature>/<version>`): a PUBLISH
there that the authorizer allows goes to the feature's hook instead of to subscribers."""


class EventHooks:
    """Lists of callbacks the engine calls synchronously; keep them quick.

    `published` runs for every accepted PUBLISH, after routing; leave it empty when no one
    needs it, the engine then skips the call entirely. A hook that takes the message onward
    (a bridge) returns True, so the sender's MQTT 5 PUBACK does not say "no subscribers". `control` maps a `$CONTROL/...`
    topic to the hook that consumes the payloads clients publish there (acknowledged, never
    routed, as Mosquitto does); its answers are the hook's to publish.
    """

    __slots__ = ("connected", "disconnected", "published", "control")

    def __init__(self) -> None:
        self.connected: list[ConnectedHook] = []
        self.disconnected: list[DisconnectedHook] = []
        self.published: list[PublishedHook] = []
        self.control: dict[str, ControlHook] = {}


class AllowAll:
    """Authenticator and Authorizer of the standalone `--anonymous` broker."""

    __slots__ = ()

    def authenticate(self, facts: ConnectionFacts) -> Principal | int:
        return Principal(name=facts.username or facts.client_id)

    def authorize(
        self, principal: Principal, action: Action, topic: str, qos: int, retain: bool
    ) -> Decision:
        return Decision.ALLOW

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        return True

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        return qos


def certificate_common_name(der: bytes) -> str | None:
    """The subject common name of a DER certificate, if it has one."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
