"""Mosquitto's dynamic security plugin, built in: authenticator, authorizer and the
`$CONTROL/dynamic-security/v1` topic that administers them while the broker runs.

Who may connect: a client the file knows, enabled, with its client id when one is set and
its password; a client without a username when anonymous access is on. A wrong password is
refused with 0x86 (3.1.1: 4) as with a password file, a disabled client or the wrong
client id with 0x87 (3.1.1: 5). A username the file
does not know (or knows without a password) is left to the password file when there is
one, as Mosquitto leaves it to its other checks, and refused otherwise.

What a client may do is decided by the roles of the client, of its groups, or of the
anonymous group (see `rules`); for a username the file does not know, the ACL file decides
when there is one, else nothing is allowed. Only roles grant `$CONTROL` topics.

Every change is saved to the file before its answer is published, and the clients it
concerns are disconnected so they reconnect under the new rules.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from broker.access.passwords import identity, refuse
from broker.engine.interfaces import (
    Action,
    Authenticator,
    Authorizer,
    ConnectionFacts,
    Decision,
    Principal,
)
from broker.engine.message import Message
from broker.engine.operations import Admin
from broker.mqtt.reason_codes import ReasonCode
from broker.mqtt.topics import parse_shared

from . import state as files
from .commands import Request
from .rules import ClientRules, roles_of

if TYPE_CHECKING:
    from broker.engine.broker import Broker

logger = logging.getLogger("broker.dynsec")

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

_ATTRIBUTE = "dynsec"


class DynamicSecurity:
    """The plugin's state from its JSON file, as an `Authenticator` and `Authorizer`."""

    def __init__(self, path: str | Path, anonymous: bool,
                 fallback_authenticator: Authenticator | None = None,
                 fallback_authorizer: Authorizer | None = None) -> None:
        self.path = Path(path)
        self.state = files.load(self.path)
        self.anonymous = anonymous
        self.fallback_authenticator = fallback_authenticator
        self.fallback_authorizer = fallback_authorizer
        self.generation = 0
        self.broker: Broker | None = None

    def attach(self, broker: Broker) -> None:
        """Answer the control topic of this running broker."""
        self.broker = broker
        broker.hooks.control[CONTROL_TOPIC] = self.control

    # Authenticator --------------------------------------------------------------------

    def authenticate(self, facts: ConnectionFacts) -> Principal | int:
        username, password = facts.username, facts.password
        if username is not None and password is not None:
            client = self.state.clients.get(username)
            if client is not None:
                if client.disabled:
                    return refuse(facts, ReasonCode.NOT_AUTHORIZED, f"client {username!r} is disabled")
                if client.client_id is not None and client.client_id != facts.client_id:
                    return refuse(facts, ReasonCode.NOT_AUTHORIZED,
                                  f"client {username!r} must use its own client id")
                if client.password is not None:
                    # A C string to Mosquitto: the password ends at its first NUL.
                    if client.password.verify(password.split(b"\x00", 1)[0]):
                        return identity(username, facts.client_id)
                    return refuse(facts, ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                                  f"bad username or password (user {username!r})")
        if self.fallback_authenticator is not None:
            return self.fallback_authenticator.authenticate(facts)  # type: ignore[return-value]
        if username is None:
            if self.anonymous:
                return identity(None, facts.client_id)
            return refuse(facts, ReasonCode.NOT_AUTHORIZED, "no username")
        # Bad credentials are 0x86 (3.1.1: 4), as with a password file; Mosquitto says 0x87.
        return refuse(facts, ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                      f"bad username or password (user {username!r})")

    # Authorizer -----------------------------------------------------------------------

    def rules(self, principal: Principal) -> ClientRules | None:
        """The principal's compiled ACLs, None when the file does not know its username."""
        attributes = principal.attributes
        # Kept on the principal, which lives as long as the client's session.
        cached: tuple[int, ClientRules | None] | None = attributes.get(_ATTRIBUTE)
        if cached is not None and cached[0] == self.generation:
            return cached[1]
        roles = roles_of(self.state, attributes.get("username"))
        rules = None if roles is None else ClientRules(self.generation, self.state, roles)
        attributes[_ATTRIBUTE] = (self.generation, rules)
        return rules

    def authorize(self, principal: Principal, action: Action, topic: str, qos: int,
                  retain: bool) -> Decision:
        rules = self.rules(principal)
        if rules is None:
            if self.fallback_authorizer is not None:
                return self.fallback_authorizer.authorize(principal, action, topic, qos, retain)
            return Decision.DENY
        if action is Action.PUBLISH:
            return Decision.ALLOW if rules.may_publish(topic) else Decision.DENY
        if not rules.may_subscribe(topic):
            return Decision.DENY
        # Mosquitto checks publishClientReceive at each delivery; that is needed only where
        # it could answer differently for the filter's topics. A change of the rules
        # re-judges every subscription, so the answer stays right.
        shared = parse_shared(topic)
        inner = topic if shared is None else shared[1]
        return Decision.ALLOW if rules.receives_everything(inner) else Decision.ALLOW_FILTERED

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        rules = self.rules(principal)
        if rules is None:
            fallback = self.fallback_authorizer
            return fallback is not None and fallback.allow_delivery(principal, topic, qos)
        return rules.may_receive(topic)

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        return qos

    def may_unsubscribe(self, principal: Principal, topic_filter: str) -> bool:
        rules = self.rules(principal)
        return True if rules is None else rules.may_unsubscribe(topic_filter)

    # Control topic ----------------------------------------------------------------------

    def control(self, principal: Principal, payload: bytes) -> None:
        """Run a request published to the control topic and publish the answer."""
        attributes = principal.attributes
        request = Request(self.state, f"{attributes.get('client_id')}/{attributes.get('username')}")
        request.run(payload)
        if request.changed:
            self.generation += 1
            try:
                files.save(self.path, self.state)
            except OSError as error:
                logger.error("dynsec: cannot save %s: %s", self.path, error)
        broker = self.broker
        if broker is None:
            return
        answer = json.dumps({"responses": request.responses}, separators=(",", ":"))
        broker.publish(Message(RESPONSE_TOPIC, answer.encode("utf-8"), 0, False))
        admin = Admin(broker)
        kick, anonymous = request.kick, request.kick_anonymous
        if kick or anonymous:
            def concerned(p: Principal) -> bool:
                username = p.attributes.get("username")
                return username in kick if username is not None else anonymous

            # As Mosquitto's plugin kicks them: without publishing their wills.
            admin.kick_where(concerned, publish_will=False)
        if request.changed:
            admin.recheck_subscriptions()
