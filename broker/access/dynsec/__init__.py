"""Mosquitto's dynamic security plugin (`mosquitto_dynamic_security.so`), native to Roost:
clients, groups and roles in a JSON file, administered over `$CONTROL/dynamic-security/v1`."""

from .plugin import CONTROL_TOPIC, RESPONSE_TOPIC, DynamicSecurity
from .state import DynsecFileError

__all__ = ["CONTROL_TOPIC", "RESPONSE_TOPIC", "DynamicSecurity", "DynsecFileError"]
