"""Variables fill exactly one literal level; hostile values make the rule not match."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acl.compiler import compile_rules
from acl.rules import Principal
from acl.substitution import TemplateError, parse_template

from .helpers import rule


def device(name: str = "d1", groups: tuple[str, ...] = ("floor-1", "building"), **attributes) -> Principal:
    return Principal.for_device("acme", name, groups, attributes)


def test_it_fills_device_tenant_group_and_attribute_variables() -> None:
    rules = [rule("t/{tenant}/g/{group}/d/{device}/z/{attr:zone}/#")]
    matcher = compile_rules(device(zone="north"), rules)
    assert matcher.publish("t/acme/g/floor-1/d/d1/z/north/temp").allowed
    assert not matcher.publish("t/acme/g/building/d/d1/z/north/temp").allowed
    assert not matcher.publish("t/acme/g/floor-1/d/d2/z/north/temp").allowed


@pytest.mark.parametrize("value", ["a/b", "+", "#", "a+b", "x#", "nul\x00byte", "", "/"])
def test_a_hostile_attribute_value_makes_the_rule_not_match(value: str) -> None:
    matcher = compile_rules(device(zone=value), [rule("zones/{attr:zone}/#")])
    assert matcher.rules == ()
    assert "zone" in matcher.skipped[0][1]
    for topic in ["zones/a/b", "zones/anything", "zones/x/y/z", "zones/nul\x00byte/t"]:
        assert not matcher.publish(topic).allowed
    assert not matcher.subscribe("zones/#").allowed


def test_a_hostile_value_never_widens_a_deny_into_a_wildcard_either() -> None:
    # A deny that cannot be filled is dropped; the allow it would have narrowed stays as is,
    # so the result is never wider than the allow itself.
    rules = [rule("data/#"), rule("data/{attr:secret}", "deny")]
    matcher = compile_rules(device(secret="+"), rules)
    assert matcher.publish("data/x").allowed
    assert [spec.id for spec, _ in matcher.skipped] == [rules[1].id]


def test_a_missing_attribute_or_a_non_text_value_makes_the_rule_not_match() -> None:
    for attributes in [{}, {"zone": None}, {"zone": True}, {"zone": ["a"]}, {"zone": {"a": 1}}]:
        matcher = compile_rules(device(**attributes), [rule("zones/{attr:zone}")])
        assert not matcher.publish("zones/True").allowed
        assert matcher.rules == ()


def test_an_integer_attribute_is_one_literal_level() -> None:
    matcher = compile_rules(device(floor=3), [rule("floors/{attr:floor}")])
    assert matcher.publish("floors/3").allowed


def test_a_device_name_with_wildcards_cannot_escape_its_tree() -> None:
    # Device names are validated by the registry; the matcher must hold even if one slips in.
    for name in ["+", "#", "a/b", "", "x\x00"]:
        matcher = compile_rules(device(name), [rule("devices/{device}/#")])
        assert not matcher.publish("devices/other/x").allowed
        assert not matcher.subscribe("devices/#").allowed


def test_a_group_name_with_a_slash_cannot_add_a_level() -> None:
    matcher = compile_rules(device(groups=("a/b",)), [rule("groups/{group}/#")])
    assert not matcher.publish("groups/a/b/x").allowed


def test_a_device_without_a_group_gets_no_group_rules() -> None:
    matcher = compile_rules(device(groups=()), [rule("groups/{group}/#")])
    assert not matcher.publish("groups/x").allowed
    assert "has no value" in matcher.skipped[0][1]


def test_a_dollar_value_in_the_first_level_never_reaches_dollar_topics() -> None:
    matcher = compile_rules(device(area="$SYS"), [rule("{attr:area}/#")])
    assert not matcher.publish("$SYS/broker/load").allowed
    assert not matcher.subscribe("$SYS/#").allowed
    # Deeper down, `$` is an ordinary character.
    assert compile_rules(device(area="$x"), [rule("a/{attr:area}")]).publish("a/$x").allowed


def test_variables_are_literal_about_case_and_unicode() -> None:
    matcher = compile_rules(device(zone="Nord\u00e9"), [rule("z/{attr:zone}")])
    assert matcher.publish("z/Nord\u00e9").allowed
    assert not matcher.publish("z/nord\u00e9").allowed
    assert not matcher.publish("z/Norde\u0301").allowed  # the same text, decomposed


@pytest.mark.parametrize("template", ["devices/x{device}", "devices/{device}x/#", "{device}{group}",
                                      "a/{attr:}/b", "a/{unknown}", "a/{Device}", "a/{attr:a/b}",
                                      "a/{", "a/}", "a/#/b", "a/b+", "", "a/\x00"])
def test_it_refuses_templates_that_cannot_be_a_filter(template: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(template)


def test_the_error_says_a_variable_must_be_a_whole_level() -> None:
    with pytest.raises(TemplateError, match="whole level"):
        parse_template("devices/x{device}")
    with pytest.raises(TemplateError, match="Unknown variable"):
        parse_template("devices/{serial}")


@pytest.mark.parametrize("template", ["devices/{device}/#", "{tenant}/{group}/+", "#", "+/x/{attr:k.e_y-1}",
                                      "$roost/presence/#", "a//b", "/"])
def test_it_accepts_valid_templates(template: str) -> None:
    parse_template(template)


@settings(deadline=None)
@given(st.text(alphabet=["a", "/", "+", "#", "\x00", "$", "\u00e9", "A"], max_size=3), st.data())
def test_a_filled_in_value_is_always_exactly_one_literal_level(value: str, data: st.DataObject) -> None:
    matcher = compile_rules(device(zone=value), [rule("z/{attr:zone}/#"), rule("{attr:zone}")])
    levels = ["z", "a", "$", "\u00e9", "A", ""]
    if value and not any(c in value for c in "/+#\x00"):
        levels.append(value)
    topic = "/".join(data.draw(st.lists(st.sampled_from(levels), min_size=1, max_size=4))) or "a"
    safe = value != "" and not any(c in value for c in "/+#\x00")
    expected = safe and (topic.split("/")[:2] == ["z", value]
                         or (topic == value and not value.startswith("$")))
    assert matcher.publish(topic).allowed == expected
