"""Trees of topic levels: the node paths every topic tree in Roost walks the same way.

Three trees keep topics level by level: the engine's subscription trie (filters, matched
by a topic name), the retained store (topic names, matched by a filter) and the ACL
compiler's rule trie (filters, matched by a name and compared with filters). What they
hold at a node differs, and so do their matching walks (see each one for why); finding,
making and pruning the path of one topic is the same, and lives here. A node is any
object with a `children` dict from level to node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar


class TrieNode(Protocol):
    @property
    def children(self) -> dict[str, Any]: ...


N = TypeVar("N", bound=TrieNode)


def find(root: N, levels: Iterable[str]) -> N | None:
    """The node at the end of `levels`, or None when the path is not there."""
    node = root
    for level in levels:
        child = node.children.get(level)
        if child is None:
            return None
        node = child
    return node


def find_or_make(root: N, levels: Iterable[str], make: Callable[[], N]) -> N:
    """The node at the end of `levels`, making the missing ones on the way."""
    node = root
    for level in levels:
        children = node.children
        child = children.get(level)
        if child is None:
            child = children[level] = make()
        node = child
    return node


def prune(root: N, levels: Sequence[str], holds_nothing: Callable[[N], bool]) -> None:
    """Remove the nodes of `levels` left with no children and nothing held, deepest first,
    so that a tree never keeps the path of a topic it no longer has."""
    path = [root]
    for level in levels:
        child = path[-1].children.get(level)
        if child is None:
            return
        path.append(child)
    for i in range(len(levels), 0, -1):
        node = path[i]
        if node.children or not holds_nothing(node):
            return
        del path[i - 1].children[levels[i - 1]]
