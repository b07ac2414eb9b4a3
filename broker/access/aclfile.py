"""Mosquitto ACL files (`acl_file`) and the authorizer that enforces them.

The format, as Mosquitto reads it:

    # comment
    topic [read|write|readwrite|deny] FILTER     before any `user` line: anonymous clients
    user USERNAME                                 the lines after it are that user's
    topic [read|write|readwrite|deny] FILTER
    pattern [read|write|readwrite|deny] FILTER    every client; %u is its username, %c its
                                                  client id

The access defaults to readwrite. Everything not granted is denied, and `deny` beats any
grant. A `%u` or `%c` value that is empty or holds `/`, `+`, `#` or NUL makes its pattern
match nothing for that client: a substitution never adds a level or a wildcard.

Decisions: PUBLISH needs a write grant matching the topic. SUBSCRIBE is always granted, as
by Mosquitto, whose ACL files say nothing about subscribing: a filter inside the read grants
and clear of every deny is delivered as is; any other is granted with every delivery checked
against the rules (read access, checked when Mosquitto delivers), so a filter no read grant
overlaps receives nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.config_files import read_text, significant_lines
from broker.engine.interfaces import Action, Decision, Principal
from broker.mqtt.errors import ProtocolError
from broker.mqtt.filters import contains, matches, overlaps
from broker.mqtt.topics import is_literal_level, parse_shared, validate_topic_filter

from .passwords import AccessFileError

# Decisions remembered per client before its cache starts over.
CACHE_LIMIT = 4096


class Access(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()
    DENY = enum.auto()


_ACCESS = {"read": Access.READ, "write": Access.WRITE, "readwrite": Access.READ | Access.WRITE,
           "deny": Access.DENY}


@dataclass(frozen=True, slots=True)
class AclLine:
    access: Access
    topic: str
    line: int


@dataclass(frozen=True, slots=True)
class AclRules:
    """The parsed file: lines for anonymous clients, per user, and patterns for everyone."""

    anonymous: tuple[AclLine, ...]
    users: dict[str, tuple[AclLine, ...]]
    patterns: tuple[AclLine, ...]


def parse_acl(text: str, source: str = "acl file") -> AclRules:
    anonymous: list[AclLine] = []
    users: dict[str, list[AclLine]] = {}
    patterns: list[AclLine] = []
    current = anonymous
    for number, line in significant_lines(text):
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword == "user":
            if not rest:
                raise AccessFileError(f"{source}:{number}: `user` needs a username")
            current = users.setdefault(rest, [])
            continue
        if keyword not in ("topic", "pattern"):
            raise AccessFileError(f"{source}:{number}: expected topic, pattern or user, not {keyword!r}")
        word, _, filter_text = rest.partition(" ")
        if word in _ACCESS and filter_text.strip():
            access, topic = _ACCESS[word], filter_text.strip()
        else:
            access, topic = Access.READ | Access.WRITE, rest
        if not topic:
            raise AccessFileError(f"{source}:{number}: `{keyword}` needs a topic filter")
        try:
            validate_topic_filter(topic)
        except ProtocolError as error:
            raise AccessFileError(f"{source}:{number}: {topic!r} is not a topic filter: {error}") from None
        entry = AclLine(access, topic, number)
        (patterns if keyword == "pattern" else current).append(entry)
    return AclRules(tuple(anonymous), {u: tuple(lines) for u, lines in users.items()}, tuple(patterns))


def _substitute(topic: str, username: str | None, client_id: str) -> str | None:
    """The pattern for one client, or None when a value would not be one literal level."""
    for token, value in (("%u", username), ("%c", client_id)):
        if token not in topic:
            continue
        if not is_literal_level(value):
            return None
        topic = topic.replace(token, value)
    return topic


class ClientRules:
    """One client's grants and denies, with its decisions cached."""

    __slots__ = ("generation", "read", "write", "deny", "_publish", "_deliver")

    def __init__(self, generation: int, lines: Iterable[tuple[Access, str]]) -> None:
        self.generation = generation
        self.read: list[str] = []
        self.write: list[str] = []
        self.deny: list[str] = []
        for access, topic in lines:
            if Access.DENY in access:
                self.deny.append(topic)
                continue
            if Access.READ in access:
                self.read.append(topic)
            if Access.WRITE in access:
                self.write.append(topic)
        self._publish: dict[str, bool] = {}
        self._deliver: dict[str, bool] = {}

    def _denied(self, topic: str) -> bool:
        return any(matches(f, topic) for f in self.deny)

    def may_publish(self, topic: str) -> bool:
        cache = self._publish
        allowed = cache.get(topic)
        if allowed is None:
            allowed = any(matches(f, topic) for f in self.write) and not self._denied(topic)
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[topic] = allowed
        return allowed

    def may_receive(self, topic: str) -> bool:
        cache = self._deliver
        allowed = cache.get(topic)
        if allowed is None:
            allowed = any(matches(f, topic) for f in self.read) and not self._denied(topic)
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[topic] = allowed
        return allowed

    def subscription(self, topic_filter: str) -> Decision:
        if (any(contains(grant, topic_filter) for grant in self.read)
                and not any(overlaps(deny, topic_filter) for deny in self.deny)):
            return Decision.ALLOW
        return Decision.ALLOW_FILTERED


class AclFile:
    """An ACL file as an `Authorizer`; `load` again to reload it (live for every client)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rules = AclRules((), {}, ())
        self.generation = 0
        self.load()

    def load(self) -> None:
        self.rules = parse_acl(read_text(self.path, AccessFileError), str(self.path))
        self.generation += 1

    def client_rules(self, principal: Principal) -> ClientRules:
        attributes = principal.attributes
        # Kept on the principal: it lives exactly as long as the client's session.
        rules: ClientRules | None = attributes.get("acl_file")
        if rules is None or rules.generation != self.generation:
            rules = attributes["acl_file"] = self._compile(principal)
        return rules

    def _compile(self, principal: Principal) -> ClientRules:
        username = principal.attributes.get("username")
        client_id = principal.attributes.get("client_id") or principal.name
        own = self.rules.anonymous if username is None else self.rules.users.get(username, ())
        lines = [(line.access, line.topic) for line in own]
        for line in self.rules.patterns:
            topic = _substitute(line.topic, username, client_id)
            if topic is not None:
                lines.append((line.access, topic))
        return ClientRules(self.generation, lines)

    # Authorizer ---------------------------------------------------------------------------

    def authorize(self, principal: Principal, action: Action, topic: str, qos: int, retain: bool) -> Decision:
        rules = self.client_rules(principal)
        if action is Action.PUBLISH:
            return Decision.ALLOW if rules.may_publish(topic) else Decision.DENY
        shared = parse_shared(topic)
        return rules.subscription(topic if shared is None else shared[1])

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        return self.client_rules(principal).may_receive(topic)

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        return qos
