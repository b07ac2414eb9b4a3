"""Mosquitto-compatible access control for the standalone broker: `--password-file` and
`--acl-file` read the files `mosquitto_passwd` and Mosquitto's `acl_file` use."""
