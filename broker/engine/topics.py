"""Subscription trie with `+`/`#` wildcards, shared groups and a per-topic match cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.engine.shared import SharedGroup
from broker.mqtt import trie

if TYPE_CHECKING:
    from broker.engine.session import Session


class SubOptions:
    """One subscription of one session (the MQTT 5 options default off for 3.1.1)."""

    __slots__ = ("qos", "no_local", "retain_as_published", "retain_handling", "sub_id",
                 "filtered")

    def __init__(
        self,
        qos: int,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        sub_id: int | None = None,
        filtered: bool = False,
    ) -> None:
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.sub_id = sub_id
        self.filtered = filtered


class Route:
    """Every matching subscription of one session folded into one delivery.

    Overlapping subscriptions deliver one copy at the highest granted QoS carrying every
    subscription identifier [MQTT-3.3.4-2] [MQTT-3.3.4-3]. The `local_*` variant leaves out
    no-local subscriptions and applies when the session itself published [MQTT-3.8.3-3];
    `local_qos` is -1 when nothing is left.
    """

    __slots__ = ("session", "qos", "rap", "sub_ids", "local_qos", "local_rap",
                 "local_sub_ids", "filtered")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.qos = -1
        self.rap = False
        self.sub_ids: tuple[int, ...] = ()
        self.local_qos = -1
        self.local_rap = False
        self.local_sub_ids: tuple[int, ...] = ()
        self.filtered = True

    def add(self, opts: SubOptions) -> None:
        if opts.qos > self.qos:
            self.qos = opts.qos
        self.rap = self.rap or opts.retain_as_published
        if opts.sub_id is not None:
            self.sub_ids = (*self.sub_ids, opts.sub_id)
        # One unfiltered subscription is enough to skip the per-message check.
        self.filtered = self.filtered and opts.filtered
        if not opts.no_local:
            if opts.qos > self.local_qos:
                self.local_qos = opts.qos
            self.local_rap = self.local_rap or opts.retain_as_published
            if opts.sub_id is not None:
                self.local_sub_ids = (*self.local_sub_ids, opts.sub_id)


class _Node:
    __slots__ = ("children", "subs", "shared")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subs: dict[Session, SubOptions] | None = None
        self.shared: dict[str, SharedGroup] | None = None


def _unused(node: _Node) -> bool:
    return not node.subs and not node.shared


Match = tuple[tuple[Route, ...], tuple[SharedGroup, ...]]
_EMPTY: Match = ((), ())


class SubscriptionTrie:
    """Filters of all sessions; `match(topic)` answers from a cache until the next change."""

    __slots__ = ("_root", "_cache", "cache_limit", "count", "_mount_levels")

    def __init__(self, mount_levels: int = 0, cache_limit: int = 100_000) -> None:
        self._root = _Node()
        self._cache: dict[str, Match] = {}
        self.cache_limit = cache_limit
        self.count = 0
        # A "$" level right after a mountpoint is as out of a wildcard's reach as a "$" first
        # level [MQTT-4.7.2-1]: tenants see their "$roost/..." only by naming it.
        self._mount_levels = mount_levels

    def _prune(self, topic_filter: str) -> None:
        trie.prune(self._root, topic_filter.split("/"), _unused)

    def add(self, topic_filter: str, session: Session, opts: SubOptions) -> bool:
        """Subscribe; returns True when the session had no subscription to this filter."""
        node = trie.find_or_make(self._root, topic_filter.split("/"), _Node)
        if node.subs is None:
            node.subs = {}
        new = session not in node.subs
        node.subs[session] = opts
        if new:
            self.count += 1
        self._cache.clear()
        return new

    def remove(self, topic_filter: str, session: Session) -> bool:
        node = trie.find(self._root, topic_filter.split("/"))
        if node is None or not node.subs or session not in node.subs:
            return False
        del node.subs[session]
        self.count -= 1
        if not node.subs:
            node.subs = None
            self._prune(topic_filter)
        self._cache.clear()
        return True

    def add_shared(self, group: str, topic_filter: str, session: Session, opts: SubOptions) -> bool:
        node = trie.find_or_make(self._root, topic_filter.split("/"), _Node)
        if node.shared is None:
            node.shared = {}
        shared = node.shared.get(group)
        if shared is None:
            shared = node.shared[group] = SharedGroup(group, topic_filter)
        new = shared.add(session, opts)
        if new:
            self.count += 1
        self._cache.clear()
        return new

    def remove_shared(self, group: str, topic_filter: str, session: Session) -> bool:
        node = trie.find(self._root, topic_filter.split("/"))
        if node is None or not node.shared or group not in node.shared:
            return False
        shared = node.shared[group]
        if not shared.remove(session):
            return False
        self.count -= 1
        if not shared.members:
            del node.shared[group]
            if not node.shared:
                node.shared = None
                self._prune(topic_filter)
        self._cache.clear()
        return True

    def invalidate(self) -> None:
        """Forget cached matches (after subscription options changed in place)."""
        self._cache.clear()

    def match(self, topic: str) -> Match:
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        result = self._match(topic)
        if len(self._cache) >= self.cache_limit:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def _match(self, topic: str) -> Match:
        # Filters stored, a name asked: one frontier of nodes per level, following the
        # literal, `+` and `#` children. Kept apart from the ACL compiler's walk of the same
        # kind (acl/compiler.py RuleTrie.matching) because this one is the per-message path:
        # it collects straight into routes and shared groups, with no list of matched nodes
        # or callback in between, and knows the mountpoint's `$` level.
        routes: dict[Session, Route] = {}
        groups: list[SharedGroup] = []
        levels = topic.split("/")
        # A topic starting with "$" is never matched by a leading wildcard [MQTT-4.7.2-1].
        wild = not topic.startswith("$")
        mount = self._mount_levels
        stop = mount if mount and len(levels) > mount and levels[mount][:1] == "$" else -1
        nodes = [self._root]
        for index, level in enumerate(levels):
            if index == stop:
                wild = False
            following: list[_Node] = []
            for node in nodes:
                children = node.children
                if not children:
                    continue
                if wild:
                    multi = children.get("#")
                    if multi is not None:
                        _collect(multi, routes, groups)
                    single = children.get("+")
                    if single is not None:
                        following.append(single)
                exact = children.get(level)
                if exact is not None:
                    following.append(exact)
            wild = True
            nodes = following
            if not nodes:
                break
        for node in nodes:
            _collect(node, routes, groups)
            # "a/#" also matches "a" itself [MQTT-4.7.1-2].
            multi = node.children.get("#")
            if multi is not None:
                _collect(multi, routes, groups)
        if not routes and not groups:
            return _EMPTY
        return tuple(routes.values()), tuple(groups)


def _collect(node: _Node, routes: dict[Session, Route], groups: list[SharedGroup]) -> None:
    if node.subs:
        for session, opts in node.subs.items():
            route = routes.get(session)
            if route is None:
                route = routes[session] = Route(session)
            route.add(opts)
    if node.shared:
        groups.extend(node.shared.values())


def check_topic_limits(topic: str, max_length: int, max_levels: int) -> bool:
    """Whether a topic name or filter stays within the configured size limits."""
    if len(topic) > max_length:
        return False
    return topic.count("/") < max_levels
