"""Topic filter algebra: matching, containment and overlap of MQTT filters.

Sans-I/O and dependency-free, shared by the broker (file ACLs, the `$` rule) and the
platform's ACL compiler. Inputs are valid topic names and filters; levels compare as exact
strings (no case folding, no Unicode normalisation).

The `$` rule [MQTT-4.7.2-1]: a filter whose first level is `+` or `#` never matches a topic
whose first level starts with `$`. Only a filter that names the `$` level literally reaches
such topics. Containment and overlap below are exact under that rule.
"""

from __future__ import annotations

_EMPTY_PARENT = ("", "#")
_EMPTY_PARENT_CANONICAL = ("", "+", "#")


def canonical_levels(levels: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The filter's levels, with `/#` spelled `/+/#`.

    `#` also matches its parent level, but the parent of `/#` is the empty topic, which no
    topic name can be. So `/#` matches exactly what `/+/#` matches, and only the second
    spelling keeps containment and overlap a plain level-by-level walk.
    """
    levels = tuple(levels)
    return _EMPTY_PARENT_CANONICAL if levels == _EMPTY_PARENT else levels


def _is_dollar(level: str) -> bool:
    return level.startswith("$")


def matches(topic_filter: str, topic: str) -> bool:
    """True if the (valid) filter matches the (valid) topic name."""
    return levels_match(topic_filter.split("/"), topic.split("/"))


def levels_match(flevels: list[str] | tuple[str, ...], tlevels: list[str] | tuple[str, ...]) -> bool:
    if flevels[0] in ("+", "#") and _is_dollar(tlevels[0]):
        return False
    count = len(tlevels)
    for index, level in enumerate(flevels):
        if level == "#":
            return True
        if index >= count:
            return False
        if level != "+" and level != tlevels[index]:
            return False
    return len(flevels) == count


def contains(outer: str, inner: str) -> bool:
    """True if every topic that `inner` matches is also matched by `outer` (both valid filters)."""
    return levels_contain(outer.split("/"), inner.split("/"))


def levels_contain(f: list[str] | tuple[str, ...], g: list[str] | tuple[str, ...]) -> bool:
    f, g = canonical_levels(f), canonical_levels(g)
    nf, ng = len(f), len(g)
    k = 0
    while True:
        fk = f[k] if k < nf else None
        gk = g[k] if k < ng else None
        if fk == "#":
            # `a/#` matches `a` and everything below; at the first level `#` misses `$` topics.
            return k > 0 or not (gk not in ("+", "#") and _is_dollar(gk or ""))
        if gk == "#":
            # `g` matches topics of every length from k on. A filter without `#` here misses
            # some of them, except at the first level where no topic has zero levels: there
            # `+/#` covers exactly what `#` covers.
            return k == 0 and nf == 2 and f[0] == "+" and f[1] == "#"
        if fk is None or gk is None:
            return fk is None and gk is None
        if fk == "+":
            if k == 0 and gk != "+" and _is_dollar(gk):
                return False
        elif gk != fk:
            return False
        k += 1


def overlaps(a: str, b: str) -> bool:
    """True if some topic name is matched by both (valid) filters."""
    return levels_overlap(a.split("/"), b.split("/"))


def levels_overlap(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...]) -> bool:
    a, b = canonical_levels(a), canonical_levels(b)
    na, nb = len(a), len(b)
    k = 0
    while True:
        ak = a[k] if k < na else None
        bk = b[k] if k < nb else None
        if ak == "#" or bk == "#":
            if k > 0:
                return True
            other = bk if ak == "#" else ak
            return other in ("+", "#") or not _is_dollar(other or "")
        if ak is None or bk is None:
            return ak is None and bk is None
        if ak == "+" and bk == "+":
            pass
        elif ak == "+" or bk == "+":
            literal = bk if ak == "+" else ak
            if k == 0 and _is_dollar(literal or ""):
                return False
        elif ak != bk:
            return False
        k += 1
