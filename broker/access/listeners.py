"""Security of a mosquitto.conf, as Mosquitto 2.0 applies it: once for the whole broker, or
one set per listener with `per_listener_settings true`.

Each set decides who connects the way Mosquitto does: on a TLS listener with
`use_identity_as_username` (or `use_subject_as_username`) the client certificate's common
name (or subject) is the username and no password is asked (no certificate: 0x86, 3.1.1
return code 4); otherwise a password file checks the username and password; without one,
a listener is open only with `allow_anonymous true` and refuses everyone else (CONNACK
0x87, 3.1.1 return code 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.access.aclfile import AclFile
from broker.access.passwords import PasswordFile, identity, refuse
from broker.engine.interfaces import (
    Action,
    AllowAll,
    Authorizer,
    ConnectionFacts,
    Decision,
    Principal,
    certificate_common_name,
)
from broker.mqtt.reason_codes import ReasonCode
from broker.mqtt.topics import SHARE_PREFIX, parse_shared

CN = "cn"
SUBJECT = "subject"


@dataclass(slots=True)
class Security:
    """One set of security options from a mosquitto.conf."""

    anonymous: bool | None = None
    """None: not given (false, except in Mosquitto's local only mode)."""
    password_file: str | None = None
    acl_file: str | None = None
    identity: str | None = None
    """CN (use_identity_as_username), SUBJECT (use_subject_as_username) or None."""
    mount_point: str = ""


def certificate_subject(der: bytes) -> str:
    """The subject as OpenSSL prints it with XN_FLAG_RFC2253, most specific part first."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    subject = x509.load_der_x509_certificate(der).subject
    return subject.rfc4514_string({NameOID.EMAIL_ADDRESS: "emailAddress"})


class SecuritySet:
    """The password file, ACL file and rules of one `Security`, loaded."""

    __slots__ = ("anonymous", "passwords", "acl", "identity", "mount_point", "authorizer")

    def __init__(self, security: Security) -> None:
        self.anonymous = bool(security.anonymous)
        self.passwords = PasswordFile(security.password_file) if security.password_file else None
        self.acl = AclFile(security.acl_file) if security.acl_file else None
        self.identity = security.identity
        self.mount_point = security.mount_point
        self.authorizer: Authorizer = self.acl if self.acl is not None else AllowAll()

    def authenticate(self, facts: ConnectionFacts, tls: bool) -> Principal | int:
        if tls and self.identity is not None:
            # Mosquitto answers a missing certificate as a bad username (0x86, 3.1.1: 4).
            if not facts.peer_certificates:
                return refuse(facts, ReasonCode.BAD_USER_NAME_OR_PASSWORD, "no client certificate")
            leaf = facts.peer_certificates[0]
            name = (certificate_common_name(leaf) if self.identity == CN
                    else certificate_subject(leaf))
            if not name:
                return refuse(facts, ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                              "no name in the client certificate")
            return identity(name, facts.client_id)
        username = facts.username
        passwords = self.passwords
        if passwords is None:
            if not self.anonymous:
                return refuse(facts, ReasonCode.NOT_AUTHORIZED,
                              "the listener allows no anonymous clients and has no password file")
            return identity(username, facts.client_id)
        if username is None:
            if not self.anonymous:
                return refuse(facts, ReasonCode.NOT_AUTHORIZED, "no username")
            return identity(None, facts.client_id)
        if not passwords.verify(username, facts.password):
            return refuse(facts, ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                          f"bad username or password (user {username!r})")
        return identity(username, facts.client_id)


class ListenerSecurity:
    """Authenticator and authorizer for a broker whose listeners have their own security.

    `by_listener` maps a listener's name (`Listener.url()`) to its set; connections on a
    listener not named there get `default`. The principal remembers its listener, so the
    authorizer asks the ACL file of the listener the client came in on.
    """

    __slots__ = ("default", "by_listener")

    def __init__(self, default: SecuritySet, by_listener: dict[str, SecuritySet]) -> None:
        self.default = default
        self.by_listener = by_listener

    def sets(self) -> list[SecuritySet]:
        return [self.default, *self.by_listener.values()]

    def authenticate(self, facts: ConnectionFacts) -> Principal | int:
        chosen = self.by_listener.get(facts.listener, self.default)
        tls = facts.listener.startswith(("mqtts://", "wss://"))
        result = chosen.authenticate(facts, tls)
        if not isinstance(result, Principal):
            return result
        # A plain value, so a session restored after a restart keeps its listener's rules.
        result.attributes["listener"] = facts.listener
        if chosen.mount_point:
            return Principal(result.name, chosen.mount_point, result.attributes)
        return result

    def _authorizer(self, principal: Principal) -> Authorizer:
        return self.by_listener.get(principal.attributes.get("listener", ""), self.default).authorizer

    # As in Mosquitto, the ACL file sees topics with the listener's mount point in front.
    def authorize(self, principal: Principal, action: Action, topic: str, qos: int,
                  retain: bool) -> Decision:
        return self._authorizer(principal).authorize(principal, action,
                                                     _mounted(principal.mountpoint, topic), qos, retain)

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        return self._authorizer(principal).allow_delivery(principal, principal.mountpoint + topic, qos)

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        return self._authorizer(principal).granted_qos(
            principal, _mounted(principal.mountpoint, topic_filter), qos)


def _mounted(mountpoint: str, topic: str) -> str:
    """`topic` as the whole broker sees it; a shared subscription's filter goes after its group."""
    if not mountpoint:
        return topic
    shared = parse_shared(topic) if topic.startswith(SHARE_PREFIX) else None
    if shared is None:
        return mountpoint + topic
    return f"{SHARE_PREFIX}{shared[0]}/{mountpoint}{shared[1]}"
