"""One client's ACLs, flattened in the order Mosquitto's plugin checks them.

The client's own roles come first, highest priority first (ties by name); then its groups
the same way, each with its roles in that order; an anonymous client has only the anonymous
group's roles. Within a role, its ACLs of the type asked for, highest priority first. The
first ACL whose topic matches decides; when none does, the default access decides, except
that `$CONTROL` topics are never granted by default.

Publishing and receiving match the topic against the ACL's filter. Subscribing and
unsubscribing check the requested filter: a `...Literal` ACL only when it is the same
string, a `...Pattern` ACL when it covers every topic the filter can match.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.mqtt.filters import levels_contain, levels_match, levels_overlap

from .state import (
    PUBLISH_RECEIVE,
    PUBLISH_SEND,
    SUBSCRIBE_LITERAL,
    SUBSCRIBE_PATTERN,
    UNSUBSCRIBE_LITERAL,
    UNSUBSCRIBE_PATTERN,
    Role,
    State,
    by_priority,
)

CACHE_LIMIT = 4096
"""Decisions remembered per client and kind before its cache starts over."""

Entry = tuple[bool, str, tuple[str, ...], bool]
"""(literal, topic, its levels, allow)"""


def _pattern_covers(acl: tuple[str, ...], topic_filter: list[str]) -> bool:
    # A lone `#` ACL covers every filter, `$` topics included, as in Mosquitto.
    return acl == ("#",) or levels_contain(acl, topic_filter)


class ClientRules:
    """A known client's (or an anonymous client's) compiled ACLs, with cached decisions."""

    __slots__ = ("generation", "publish", "receive", "subscribe", "unsubscribe", "defaults",
                 "_publish_cache", "_receive_cache")

    def __init__(self, generation: int, state: State, roles: list[Role]) -> None:
        self.generation = generation
        self.publish = _flatten(roles, None, PUBLISH_SEND)
        self.receive = _flatten(roles, None, PUBLISH_RECEIVE)
        self.subscribe = _flatten(roles, SUBSCRIBE_LITERAL, SUBSCRIBE_PATTERN)
        self.unsubscribe = _flatten(roles, UNSUBSCRIBE_LITERAL, UNSUBSCRIBE_PATTERN)
        self.defaults = dict(state.default_access)
        self._publish_cache: dict[str, bool] = {}
        self._receive_cache: dict[str, bool] = {}

    def may_publish(self, topic: str) -> bool:
        cache = self._publish_cache
        allowed = cache.get(topic)
        if allowed is None:
            allowed = self._decide(self.publish, topic, self.defaults[PUBLISH_SEND], levels_match)
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[topic] = allowed
        return allowed

    def may_receive(self, topic: str) -> bool:
        cache = self._receive_cache
        allowed = cache.get(topic)
        if allowed is None:
            allowed = self._decide(self.receive, topic, self.defaults[PUBLISH_RECEIVE], levels_match)
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[topic] = allowed
        return allowed

    def may_subscribe(self, topic_filter: str) -> bool:
        return self._decide(self.subscribe, topic_filter, self.defaults["subscribe"], _pattern_covers)

    def may_unsubscribe(self, topic_filter: str) -> bool:
        return self._decide(self.unsubscribe, topic_filter, self.defaults["unsubscribe"],
                            _pattern_covers)

    def receives_everything(self, topic_filter: str) -> bool:
        """Whether publishClientReceive allows every topic the filter matches, so its
        deliveries need no check: the first receive ACL the filter touches covers it and
        allows, or none touches it and the default allows."""
        levels = topic_filter.split("/")
        for _literal, _, acl_levels, allow in self.receive:
            if levels_contain(acl_levels, levels):
                return allow
            if levels_overlap(acl_levels, levels):
                return False  # decided topic by topic
        # A leading wildcard never matches `$CONTROL...`; a literal first level decides it.
        return self.defaults[PUBLISH_RECEIVE] and not levels[0].startswith("$CONTROL")

    @staticmethod
    def _decide(entries: list[Entry], topic: str, default: bool,
                match: Callable[[tuple[str, ...], list[str]], bool]) -> bool:
        levels = topic.split("/")
        for literal, acl, acl_levels, allow in entries:
            if (acl == topic) if literal else match(acl_levels, levels):
                return allow
        return default and not topic.startswith("$CONTROL")


def _flatten(roles: list[Role], literal: str | None, pattern: str) -> list[Entry]:
    out: list[Entry] = []
    for role in roles:
        if literal is not None:
            out += [(True, acl.topic, (), acl.allow) for acl in role.acls[literal]]
        out += [(False, acl.topic, tuple(acl.topic.split("/")), acl.allow)
                for acl in role.acls[pattern]]
    return out


def roles_of(state: State, username: str | None) -> list[Role] | None:
    """The roles deciding for a client in checking order; None for a username the plugin
    does not know (Mosquitto's plugin defers: nothing is granted)."""
    if username is None:
        group = state.groups.get(state.anonymous_group) if state.anonymous_group else None
        return [] if group is None else [state.roles[n] for n, _ in by_priority(group.roles)]
    client = state.clients.get(username)
    if client is None:
        return None
    roles = [state.roles[n] for n, _ in by_priority(client.roles)]
    for name, _ in by_priority(client.groups):
        roles += [state.roles[n] for n, _ in by_priority(state.groups[name].roles)]
    return roles
