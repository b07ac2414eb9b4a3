"""Roost MQTT broker."""
