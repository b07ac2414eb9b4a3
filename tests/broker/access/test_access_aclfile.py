"""Mosquitto ACL files: parsing, and the decisions of broker.access.aclfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.access.aclfile import AclFile, parse_acl
from broker.access.passwords import AccessFileError, identity
from broker.engine.interfaces import Action, Decision

ACL = """\
# Anonymous clients may only read the weather.
topic read weather/#

user alice
topic readwrite home/#
topic deny home/secret/#
topic read $SYS/#

user bob
topic write logs/bob
topic read home/+/temperature

pattern readwrite devices/%c/#
pattern read users/%u/inbox
"""


@pytest.fixture
def acl(tmp_path: Path) -> AclFile:
    path = tmp_path / "acl"
    path.write_text(ACL)
    return AclFile(path)


def publish(acl: AclFile, who: str | None, topic: str, client_id: str = "c1") -> bool:
    return acl.authorize(identity(who, client_id), Action.PUBLISH, topic, 0, False) is Decision.ALLOW


def subscribe(acl: AclFile, who: str | None, topic_filter: str, client_id: str = "c1") -> Decision:
    return acl.authorize(identity(who, client_id), Action.SUBSCRIBE, topic_filter, 0, False)


def test_topic_lines_before_any_user_belong_to_anonymous_clients(acl: AclFile) -> None:
    assert subscribe(acl, None, "weather/#") is Decision.ALLOW
    assert not publish(acl, None, "weather/today")  # read only
    # Not alice's: granted, as by Mosquitto, and nothing is delivered.
    assert subscribe(acl, "alice", "weather/#") is Decision.ALLOW_FILTERED
    assert not acl.allow_delivery(identity("alice", "c1"), "weather/today", 0)
    assert not publish(acl, None, "home/kitchen")


def test_a_users_grants_and_denies_with_deny_winning(acl: AclFile) -> None:
    assert publish(acl, "alice", "home/kitchen/light")
    assert not publish(acl, "alice", "home/secret/diary")
    assert not publish(acl, "alice", "garden/hose")
    assert subscribe(acl, "alice", "home/kitchen/#") is Decision.ALLOW
    # Overlaps the deny: granted, and every delivery is checked.
    assert subscribe(acl, "alice", "home/#") is Decision.ALLOW_FILTERED
    assert acl.allow_delivery(identity("alice", "c1"), "home/kitchen", 0)
    assert not acl.allow_delivery(identity("alice", "c1"), "home/secret/diary", 0)
    # Covered by the deny: granted, and nothing under it is delivered.
    assert subscribe(acl, "alice", "home/secret/+") is Decision.ALLOW_FILTERED
    assert not acl.allow_delivery(identity("alice", "c1"), "home/secret/key", 0)


def test_a_wildcard_wider_than_the_grants_is_filtered_per_message(acl: AclFile) -> None:
    bob = identity("bob", "c1")
    assert subscribe(acl, "bob", "#") is Decision.ALLOW_FILTERED
    assert acl.allow_delivery(bob, "home/attic/temperature", 0)
    assert not acl.allow_delivery(bob, "home/attic/humidity", 0)
    assert subscribe(acl, "bob", "garden/#") is Decision.ALLOW_FILTERED  # overlaps no read grant
    assert not acl.allow_delivery(bob, "garden/hose", 0)
    assert publish(acl, "bob", "logs/bob") and not publish(acl, "bob", "logs/alice")


def test_dollar_topics_need_a_rule_that_names_them(acl: AclFile) -> None:
    assert subscribe(acl, "alice", "$SYS/broker/uptime") is Decision.ALLOW
    # `#` never reaches $SYS, so bob's `#` cannot be filtered into it either.
    assert not acl.allow_delivery(identity("bob", "c1"), "$SYS/broker/uptime", 0)
    assert subscribe(acl, "bob", "$SYS/#") is Decision.ALLOW_FILTERED


def test_patterns_substitute_the_client_id_and_username(acl: AclFile) -> None:
    assert publish(acl, "bob", "devices/bob-phone/state", client_id="bob-phone")
    assert not publish(acl, "bob", "devices/other/state", client_id="bob-phone")
    assert publish(acl, None, "devices/anon-1/state", client_id="anon-1")  # patterns apply to all
    assert subscribe(acl, "alice", "users/alice/inbox") is Decision.ALLOW
    assert subscribe(acl, "alice", "users/bob/inbox") is Decision.ALLOW_FILTERED
    assert not acl.allow_delivery(identity("alice", "c1"), "users/bob/inbox", 0)
    assert not acl.allow_delivery(identity(None, "x"), "users/x/inbox", 0)  # no username


@pytest.mark.parametrize("client_id", ["+", "#", "a/b", ""])
def test_a_substituted_value_never_becomes_a_wildcard_or_a_new_level(acl: AclFile, client_id: str) -> None:
    """CVE-2017-7650: a client id of `+` or `#` must not widen a pattern."""
    assert not publish(acl, None, "devices/x/state", client_id=client_id)
    assert not publish(acl, None, "devices/a/b/state", client_id=client_id)
    assert subscribe(acl, None, "devices/#", client_id=client_id) is Decision.ALLOW_FILTERED
    assert not acl.allow_delivery(identity(None, client_id), "devices/x/state", 0)


def test_shared_subscriptions_are_judged_on_their_inner_filter(acl: AclFile) -> None:
    assert subscribe(acl, "alice", "$share/g/home/kitchen/#") is Decision.ALLOW
    assert subscribe(acl, "alice", "$share/g/garden/#") is Decision.ALLOW_FILTERED


def test_reloading_applies_to_clients_already_connected(acl: AclFile) -> None:
    alice = identity("alice", "c1")
    assert acl.authorize(alice, Action.PUBLISH, "home/kitchen", 0, False) is Decision.ALLOW
    acl.path.write_text("user alice\ntopic read home/#\n")
    acl.load()
    assert acl.authorize(alice, Action.PUBLISH, "home/kitchen", 0, False) is Decision.DENY


@pytest.mark.parametrize(("text", "message"), [
    ("topic read home/#/x\n", r"acl:1: 'home/#/x' is not a topic filter"),
    ("user\n", r"acl:1: `user` needs a username"),
    ("\n\nallow home/#\n", r"acl:3: expected topic, pattern or user"),
    ("topic\n", r"acl:1: `topic` needs a topic filter"),
])
def test_a_broken_line_is_refused_with_its_line_number(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "acl"
    path.write_text(text)
    with pytest.raises(AccessFileError, match=message):
        AclFile(path)


def test_the_access_word_is_optional_and_topics_may_hold_spaces() -> None:
    rules = parse_acl("user u\ntopic rooms/living room/#\ntopic read a b\n")
    assert [line.topic for line in rules.users["u"]] == ["rooms/living room/#", "a b"]
