"""The dynamic security plugin's checking order and its file, without a broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.access.dynsec.rules import ClientRules, roles_of
from broker.access.dynsec.state import Acl, Client, Group, Role, State, load, parse


def _role(name: str, *acls: tuple[str, str, bool, int]) -> Role:
    role = Role(name)
    for kind, topic, allow, priority in acls:
        role.add_acl(kind, Acl(topic, priority, allow))
    return role


def _rules(state: State, username: str | None) -> ClientRules:
    roles = roles_of(state, username)
    assert roles is not None
    return ClientRules(0, state, roles)


@pytest.fixture
def state() -> State:
    state = State()
    state.roles = {
        "low": _role("low", ("publishClientSend", "x/#", True, 0)),
        "high": _role("high", ("publishClientSend", "x/secret", False, 0)),
        "group": _role("group", ("publishClientSend", "y/#", True, 0),
                       ("publishClientSend", "x/secret", True, 0)),
        "within": _role("within", ("publishClientSend", "z/+", True, 0),
                        ("publishClientSend", "z/no", False, 5)),
    }
    state.clients["dev"] = Client("dev", roles={"low": 1, "high": 2, "within": -1},
                                  groups={"g": -1})
    state.groups["g"] = Group("g", roles={"group": -1}, clients={"dev": -1})
    return state


def test_roles_are_checked_by_priority_then_groups(state):
    rules = _rules(state, "dev")
    assert not rules.may_publish("x/secret")  # the higher role's deny comes first
    assert rules.may_publish("x/other")
    assert rules.may_publish("y/1")  # only a group grants it
    assert not rules.may_publish("z/no")  # a higher-priority ACL within the role
    assert rules.may_publish("z/yes")
    assert not rules.may_publish("w")  # nothing matches: the default (deny)


def test_default_access_never_grants_control_topics(state):
    state.default_access["publishClientSend"] = True
    rules = _rules(state, "dev")
    assert rules.may_publish("anything/else")
    assert not rules.may_publish("$CONTROL/dynamic-security/v1")


def test_unknown_usernames_have_no_roles_and_anonymous_clients_the_anonymous_group(state):
    assert roles_of(state, "stranger") is None
    assert roles_of(state, None) == []
    state.anonymous_group = "g"
    assert [r.name for r in roles_of(state, None) or []] == ["group"]


@pytest.mark.parametrize(("acl", "requested", "granted"), [
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/+/c", True),
    ("a/b/c", "a/+/c", False),
    ("a/#", "a", True),
    ("a/#", "a/b/#", True),
    ("a/+", "a/#", False),
    ("#", "$SYS/#", True),  # a lone # covers everything, as Mosquitto's plugin has it
    ("+/#", "$SYS/x", False),
])
def test_subscribe_patterns_cover_the_requested_filter(acl, requested, granted):
    state = State()
    state.roles["r"] = _role("r", ("subscribePattern", acl, True, 0))
    state.clients["c"] = Client("c", roles={"r": -1})
    assert _rules(state, "c").may_subscribe(requested) is granted


def test_a_literal_acl_is_the_same_string_only():
    state = State()
    state.roles["r"] = _role("r", ("subscribeLiteral", "a/+", True, 0),
                             ("unsubscribeLiteral", "a/b", False, 0))
    state.clients["c"] = Client("c", roles={"r": -1})
    rules = _rules(state, "c")
    assert rules.may_subscribe("a/+") and not rules.may_subscribe("a/b")
    assert not rules.may_unsubscribe("a/b")
    assert not rules.may_unsubscribe("a/c")  # unsubscribe default is deny here


def test_the_file_is_read_as_mosquitto_reads_it(tmp_path: Path):
    document = {
        "defaultACLAccess": {"publishClientReceive": True},
        "clients": [
            {"username": "ok", "textName": "Mixed case key", "roles": [{"rolename": "r"}, {"rolename": "gone"}]},
            {"username": "bad-salt", "password": "AAAA", "salt": "AAAA", "iterations": 101},
            {"username": "ok", "textname": "duplicate, skipped"},
        ],
        "groups": [{"groupname": "g", "clients": [{"username": "ok", "priority": 3}, {"username": "nobody"}]}],
        "roles": [{"rolename": "r", "acls": [{"acltype": "PUBLISHCLIENTSEND", "topic": "t", "allow": True},
                                             {"acltype": "bogus", "topic": "t"}]}],
        "anonymousGroup": "g",
    }
    state = parse(document)
    assert list(state.clients) == ["ok"]
    assert state.clients["ok"].text_name == "Mixed case key"
    assert state.clients["ok"].roles == {"r": -1}
    assert state.clients["ok"].groups == {"g": 3} and state.groups["g"].clients == {"ok": 3}
    assert [a.topic for a in state.roles["r"].acls["publishClientSend"]] == ["t"]
    assert state.default_access["publishClientReceive"] and not state.default_access["subscribe"]
    assert state.anonymous_group == "g"
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(state.to_json()))
    assert load(path).to_json() == state.to_json()
    path.write_text("")
    assert load(path).clients == {}
