"""Retained messages, kept in a topic tree so a wildcard subscribe walks only what matches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from broker.mqtt import trie

if TYPE_CHECKING:
    from broker.engine.interfaces import Principal
    from broker.engine.message import Message


class Slot:
    """A topic's place in the store: `message` is what it holds now (None: nothing)."""

    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, Slot] = {}
        self.message: Message | None = None


def _empty(node: Slot) -> bool:
    return node.message is None


class RetainedStore:
    """One retained message per topic name [MQTT-3.3.1-5]."""

    __slots__ = ("_root", "count", "max_count", "_dollar_levels", "publishers")

    def __init__(self, max_count: int = 1_000_000, mount_levels: int = 0) -> None:
        self._root = Slot()
        self.count = 0
        self.max_count = max_count
        # Levels where a "$" name is out of a wildcard's reach [MQTT-4.7.2-1]: the first
        # one, and the first one inside a mountpoint.
        self._dollar_levels = frozenset((0, mount_levels))
        # Who published each retained message (by topic), so a new subscriber gets it only
        # while that publisher may still publish it. Kept with the message in storage.
        self.publishers: dict[str, Principal] = {}

    def set(self, message: Message) -> bool:
        """Store or replace; an empty payload clears instead [MQTT-3.3.1-6] [MQTT-3.3.1-7].

        Returns False when a new topic would pass `max_count` (the message is then only
        delivered, not retained).
        """
        if not message.payload:
            self.clear(message.topic)
            return True
        node = trie.find_or_make(self._root, message.topic.split("/"), Slot)
        if node.message is None:
            if self.count >= self.max_count:
                self._prune(message.topic)
                return False
            self.count += 1
        node.message = message
        origin = message.origin
        if origin is not None:
            self.publishers[message.topic] = origin.principal
        else:
            self.publishers.pop(message.topic, None)
        return True

    def restore(self, message: Message, publisher: Principal | None) -> None:
        """A retained message loaded from storage, with the publisher it was stored with."""
        if self.set(message) and publisher is not None:
            self.publishers[message.topic] = publisher

    def publisher(self, message: Message) -> Principal | None:
        return self.publishers.get(message.topic)

    def get(self, topic: str) -> Message | None:
        node = trie.find(self._root, topic.split("/"))
        return None if node is None else node.message

    def clear(self, topic: str) -> bool:
        node = trie.find(self._root, topic.split("/"))
        if node is None or node.message is None:
            return False
        node.message = None
        self.count -= 1
        self.publishers.pop(topic, None)
        self._prune(topic)
        return True

    def _prune(self, topic: str) -> None:
        trie.prune(self._root, topic.split("/"), _empty)

    def match(self, topic_filter: str) -> list[Message]:
        """Retained messages whose topic the filter matches."""
        return [slot.message for slot in self.slots(topic_filter) if slot.message is not None]

    def slots(self, topic_filter: str) -> list[Slot]:
        """The places of the retained messages the filter matches: what one holds later says
        whether its message was replaced or cleared meanwhile.

        The reverse of the other tries' walks: names are stored and the filter asks, so a
        `+` or `#` in the question fans out over the stored children (a depth-first walk),
        where the subscription trie follows at most three children per node.
        """
        out: list[Slot] = []
        self._walk(self._root, topic_filter.split("/"), 0, out)
        return out

    def _walk(self, node: Slot, levels: list[str], i: int, out: list[Slot]) -> None:
        if i == len(levels):
            if node.message is not None:
                out.append(node)
            return
        level = levels[i]
        if level == "#":
            # The parent level itself matches too ("a/#" matches "a") [MQTT-4.7.1-2].
            if node.message is not None and i > 0:
                out.append(node)
            guarded = i in self._dollar_levels
            for name, child in node.children.items():
                if guarded and name.startswith("$"):
                    continue
                self._subtree(child, out)
            return
        if level == "+":
            guarded = i in self._dollar_levels
            for name, child in node.children.items():
                if guarded and name.startswith("$"):
                    continue
                self._walk(child, levels, i + 1, out)
            return
        exact = node.children.get(level)
        if exact is not None:
            self._walk(exact, levels, i + 1, out)

    def _subtree(self, node: Slot, out: list[Slot]) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if current.message is not None:
                out.append(current)
            stack.extend(current.children.values())

    def __iter__(self) -> Iterator[Message]:
        out: list[Slot] = []
        self._subtree(self._root, out)
        return iter([slot.message for slot in out if slot.message is not None])
