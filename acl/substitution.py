"""Rule filter templates: `{device}`, `{tenant}`, `{group}` and `{attr:KEY}` variables.

A variable is always one whole level, and the value put there is always one literal level.
A value that would add a level (`/`), a wildcard (`+`, `#`), a NUL, that is empty, or that
starts with `$` in the first level makes the rule not match that principal at all, rather
than widening it: this is the hole behind Mosquitto's CVE-2017-7650, where a client id
holding `+` or `#` turned a `%c` pattern into a wildcard. Pure Python, no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from broker.mqtt.topics import NOT_IN_A_LEVEL

from .rules import Principal
from .topics import TopicError, validate_filter

_VARIABLE = re.compile(r"\{(device|tenant|group|attr:([A-Za-z0-9_.-]+))\}", re.ASCII)
# What stands in for a variable when a template is checked for MQTT validity.
_PROBE = "x"


class TemplateError(ValueError):
    """A rule filter template that can never be a valid filter."""


@dataclass(frozen=True, slots=True)
class Variable:
    name: str  # "device", "tenant", "group" or "attr"
    key: str = ""  # the attribute name for "attr"

    def __str__(self) -> str:
        return "{attr:" + self.key + "}" if self.name == "attr" else "{" + self.name + "}"


Level = str | Variable


def parse_template(template: str) -> tuple[Level, ...]:
    """Split a template into literal levels and whole-level variables; raise TemplateError."""
    if not isinstance(template, str) or template == "":
        raise TemplateError("The topic filter is empty.")
    levels: list[Level] = []
    for level in template.split("/"):
        if "{" not in level and "}" not in level:
            levels.append(level)
            continue
        found = _VARIABLE.fullmatch(level)
        if found is None:
            if _VARIABLE.search(level):
                raise TemplateError(
                    f"The variable in level {level!r} must be the whole level, e.g. devices/{{device}}/#."
                )
            raise TemplateError(
                f"Unknown variable in level {level!r}: use {{device}}, {{tenant}}, {{group}} or {{attr:KEY}}."
            )
        if found.group(2) is not None:
            levels.append(Variable("attr", found.group(2)))
        else:
            levels.append(Variable(found.group(1)))
    probe = "/".join(_PROBE if isinstance(level, Variable) else level for level in levels)
    try:
        validate_filter(probe)
    except TopicError as exc:
        raise TemplateError(str(exc)) from None
    return tuple(levels)


def validate_template(template: str) -> None:
    parse_template(template)


def has_variables(levels: tuple[Level, ...]) -> bool:
    return any(isinstance(level, Variable) for level in levels)


def variable_value(variable: Variable, principal: Principal) -> str | None:
    """The raw value of a variable for this principal, or None when it has none."""
    if variable.name == "device":
        return principal.device
    if variable.name == "tenant":
        return principal.tenant
    if variable.name == "group":
        return principal.groups[0] if principal.groups else None
    value = principal.attributes.get(variable.key)
    # Booleans are ints in Python; "True" in a topic would surprise everyone.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else None


def unsafe_reason(value: str | None, first_level: bool) -> str | None:
    """Why a value cannot be used as one literal level, or None if it can."""
    if value is None:
        return "has no value"
    if value == "":
        return "is empty"
    for char in NOT_IN_A_LEVEL:
        if char in value:
            return "contains NUL" if char == "\x00" else f"contains {char!r}"
    if first_level and value.startswith("$"):
        return "starts with '$' in the first level"
    return None


def substitute(levels: tuple[Level, ...], principal: Principal) -> tuple[tuple[str, ...] | None, str]:
    """Fill variables from the principal: (levels, "") or (None, why the rule cannot apply)."""
    out: list[str] = []
    for index, level in enumerate(levels):
        if isinstance(level, str):
            out.append(level)
            continue
        value = variable_value(level, principal)
        reason = unsafe_reason(value, index == 0)
        if value is None or reason is not None:  # no value always has a reason
            return None, f"{level} {reason}"
        out.append(value)
    return tuple(out), ""
