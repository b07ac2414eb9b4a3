"""The subscription trie and the retained tree agree with the plain matching rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.engine.interfaces import Principal
from broker.engine.message import Message
from broker.engine.retained import RetainedStore
from broker.engine.session import Session
from broker.engine.topics import SubOptions, SubscriptionTrie
from broker.mqtt.filters import matches as topic_matches

LEVELS = st.sampled_from(["a", "b", "$SYS", "", "c"])
topics = st.lists(LEVELS, min_size=1, max_size=4).map("/".join)
filters = st.lists(st.sampled_from(["a", "b", "$SYS", "", "+"]), min_size=1, max_size=4).flatmap(
    lambda levels: st.sampled_from(["/".join(levels), "/".join([*levels, "#"]), "#"])
)


def session(name: str) -> Session:
    return Session(name, "", Principal(name))


@settings(max_examples=300, deadline=None)
@given(st.lists(filters, min_size=1, max_size=6, unique=True), topics)
def test_the_trie_matches_exactly_the_filters_that_match_the_topic(filter_list, topic):
    trie = SubscriptionTrie()
    sessions = {f: session(f) for f in filter_list}
    for f, s in sessions.items():
        trie.add(f, s, SubOptions(0))
    routes, _ = trie.match(topic)
    got = {r.session.client_id for r in routes}
    assert got == {f for f in filter_list if topic_matches(f, topic)}


@settings(max_examples=300, deadline=None)
@given(st.lists(topics, min_size=1, max_size=8, unique=True), filters)
def test_the_retained_tree_returns_exactly_the_topics_a_filter_matches(topic_list, topic_filter):
    store = RetainedStore()
    for t in topic_list:
        store.set(Message(t, b"x", 0, True))
    got = {m.topic for m in store.match(topic_filter)}
    assert got == {t for t in topic_list if topic_matches(topic_filter, t)}


def test_a_leading_wildcard_does_not_match_a_dollar_topic():
    """[MQTT-4.7.2-1]"""
    assert not topic_matches("#", "$SYS/x")
    assert not topic_matches("+/x", "$SYS/x")
    assert topic_matches("$SYS/#", "$SYS/x")


def test_inside_a_mountpoint_a_leading_wildcard_does_not_match_a_dollar_level():
    """Tenants' "$roost/..." topics stay out of their "#" as "$SYS" does [MQTT-4.7.2-1]."""
    trie = SubscriptionTrie(mount_levels=1)
    everything, named, unmounted = session("all"), session("named"), session("root")
    trie.add("acme/#", everything, SubOptions(0))
    trie.add("acme/+/presence/lamp", everything, SubOptions(0))
    trie.add("acme/$roost/#", named, SubOptions(0))
    trie.add("#", unmounted, SubOptions(0))
    assert {r.session for r in trie.match("acme/$roost/presence/lamp")[0]} == {named, unmounted}
    assert {r.session for r in trie.match("acme/devices/lamp")[0]} == {everything, unmounted}
    assert trie.match("$SYS/broker/uptime")[0] == ()
    store = RetainedStore(mount_levels=1)
    for topic in ("acme/$roost/presence/lamp", "acme/devices/lamp", "$SYS/x"):
        store.set(Message(topic, b"x", 0, True))
    assert {m.topic for m in store.match("acme/#")} == {"acme/devices/lamp"}
    assert {m.topic for m in store.match("acme/+/presence/lamp")} == set()
    assert {m.topic for m in store.match("acme/$roost/+/lamp")} == {"acme/$roost/presence/lamp"}
    assert "$SYS/x" not in {m.topic for m in store.match("#")}


def test_the_match_cache_is_invalidated_when_subscriptions_change():
    trie = SubscriptionTrie()
    first, second = session("1"), session("2")
    trie.add("a/+", first, SubOptions(0))
    assert len(trie.match("a/b")[0]) == 1
    trie.add("a/#", second, SubOptions(1))
    assert len(trie.match("a/b")[0]) == 2
    trie.remove("a/+", first)
    assert [r.session for r in trie.match("a/b")[0]] == [second]


def test_removing_the_last_subscription_prunes_the_tree():
    trie = SubscriptionTrie()
    s = session("1")
    trie.add("a/b/c", s, SubOptions(0))
    trie.remove("a/b/c", s)
    assert trie.count == 0 and trie._root.children == {}


def test_overlapping_subscriptions_fold_into_one_route_with_the_highest_qos():
    trie = SubscriptionTrie()
    s = session("1")
    trie.add("a/#", s, SubOptions(0, sub_id=1))
    trie.add("a/b", s, SubOptions(2, sub_id=2))
    [route] = trie.match("a/b")[0]
    assert route.qos == 2 and sorted(route.sub_ids) == [1, 2]


def test_the_retained_store_refuses_new_topics_beyond_its_limit():
    store = RetainedStore(max_count=1)
    assert store.set(Message("a", b"1", 0, True))
    assert not store.set(Message("b", b"1", 0, True))
    assert store.set(Message("a", b"2", 0, True))  # replacing is always allowed
    assert store.count == 1
