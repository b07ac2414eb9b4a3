"""Validation of names that end up inside MQTT topics and client identifiers."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

DEVICE_NAME_RULE = (
    "1 to 128 ASCII characters: letters, digits and . _ : - ; the first one a letter or a digit"
)
# re.ASCII keeps \w-style lookalikes (full-width letters, Cyrillic) out; fullmatch refuses
# a trailing newline that `$` would let through.
_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)


def validate_device_name(value: str) -> None:
    if not isinstance(value, str) or not _DEVICE_NAME.fullmatch(value):
        raise ValidationError(
            "Invalid device name %(value)r: use " + DEVICE_NAME_RULE + ".",
            code="invalid_device_name",
            params={"value": value},
        )


def is_valid_device_name(value: str) -> bool:
    return isinstance(value, str) and bool(_DEVICE_NAME.fullmatch(value))
