"""`python -m broker --config mosquitto.conf`: Mosquitto 2.0 options translated, the rest
ignored with a warning or refused with its line."""

from __future__ import annotations

import pytest

from broker.mosquitto_conf import ConfigError, translate

CONF = """\
# A typical Mosquitto 2.0 setup.
per_listener_settings false
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl

listener 1883
listener 8883
certfile /etc/mosquitto/certs/server.pem
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/ca.pem
require_certificate true

listener 9001 127.0.0.1
protocol websockets

persistence true
persistence_location /var/lib/mosquitto/
autosave_interval 1800
persistent_client_expiration 2w
max_queued_messages 5000
max_inflight_messages 0
max_connections -1
connection_messages true
log_dest file /var/log/mosquitto/mosquitto.log
log_type all
"""


def test_a_typical_configuration_becomes_broker_options():
    result = translate(CONF)
    assert result.args == [
        "--bind", ":1883", "--bind", "tls://:8883", "--bind", "ws://127.0.0.1:9001",
        "--tls-cert", "/etc/mosquitto/certs/server.pem", "--tls-key", "/etc/mosquitto/certs/server.key",
        "--tls-ca", "/etc/mosquitto/ca.pem",
        "--persist", "/var/lib/mosquitto/",
        "--password-file", "/etc/mosquitto/passwd", "--acl-file", "/etc/mosquitto/acl",
        "--autosave-interval", "1800", "--max-session-expiry", str(14 * 86400),
        "--max-queued-messages", "5000", "--max-inflight", "65535", "--max-connections", "0",
        "--connection-messages",
    ]
    assert result.ignored == ["mosquitto.conf:25: log_dest", "mosquitto.conf:26: log_type"]


def test_no_listener_is_mosquittos_local_only_mode():
    assert translate("").args == ["--anonymous"]
    assert translate("allow_anonymous false\n").args == []
    assert translate("listener 1883\n").args == ["--bind", ":1883"]


def test_a_cafile_without_require_certificate_asks_for_no_client_certificate():
    args = translate("listener 8883\ncertfile s.pem\nkeyfile s.key\ncafile ca.pem\n").args
    assert "--tls-ca" not in args and "tls://:8883" in args


@pytest.mark.parametrize(("text", "message"), [
    ("connection bridge-1\naddress remote:1883\n", "bridge 'bridge-1' has no topic line"),
    ("connection b\ntopic # both 1 a/\n", r":2: topic PATTERN \[out\|in\|both"),
    ("connection b\naddress a:1883 b:1883\ntopic #\n", "one bridge address only"),
    ("topic sensors/# out 1\n", r":1: topic belongs in a bridge, after a connection line"),
    ("connection b\naddress a\ntopic # sideways\n", "direction out, in or both"),
    ("connection b\naddress a\ntopic #\nrestart_timeout 30 10\n", r":4: the restart_timeout cap 10 is lower"),
    ("connection b\naddress a\ntopic #\nrestart_timeout soon\n", "restart_timeout SECONDS or"),
    ("listener 1883\nprotocol mqttsn\n", r":2: protocol 'mqttsn' is not offered"),
    ("allow_anonymous yes\n", r":1: expected true or false"),
    ("persistent_client_expiration 3 days\n", "expected a duration"),
    ("listener 8883\ncertfile a.pem\nkeyfile a.key\nlistener 8884\ncertfile b.pem\nkeyfile b.key\n",
     "different certificates"),
    ("listener 8883\ncertfile a.pem\n", r":1: a TLS listener needs both certfile and keyfile"),
    ("plugin /usr/lib/mosquitto_auth_ldap.so\n", r":1: plugin /usr/lib/mosquitto_auth_ldap.so: Roost cannot load C plugins"),
    ("auth_plugin /usr/lib/go-auth.so\n", "Roost cannot load C plugins"),
    ("plugin /usr/lib/mosquitto_dynamic_security.so\n", r":1: the dynamic security plugin needs plugin_opt_config_file"),
    ("plugin_opt_config_file /var/lib/mosquitto/dynsec.json\n", "plugin_opt_config_file without a plugin line"),
])
def test_what_cannot_be_honoured_stops_the_start_with_its_line(text, message):
    with pytest.raises(ConfigError, match=message):
        translate(text)


def test_the_dynamic_security_plugin_is_recognised_by_its_file_name():
    args = translate("listener 1883\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
                     "plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json\n").args
    assert args[args.index("--dynsec-file") + 1] == "/var/lib/mosquitto/dynamic-security.json"
    assert "--anonymous" not in args
    old_style = translate("auth_plugin C:\\mosquitto\\mosquitto_dynamic_security.dll\n"
                          "auth_opt_config_file ds.json\nauth_opt_other x\n")
    assert "--dynsec-file" in old_style.args and old_style.ignored == ["mosquitto.conf:3: auth_opt_other"]


def test_bridge_sections_become_bridge_settings():
    result = translate("""\
listener 1883
connection cloud
address cloud.example.com:8883
remote_username edge-7
remote_password secret
remote_clientid edge-7
bridge_protocol_version mqttv50
bridge_cafile /etc/ca.pem
cleansession true
local_cleansession false
restart_timeout 0
notifications false
try_private false
bridge_attempt_unsubscribe false
topic sensors/# out 1
topic commands/+ in 2
topic "" both 0 local/status remote/edge-7/status

connection backup
address 10.0.0.2
topic # out
""")
    assert result.args == ["--bind", ":1883"]
    assert result.ignored == []
    cloud, backup = result.bridges
    assert (cloud.try_private, cloud.attempt_unsubscribe) == (False, False)
    assert (backup.try_private, backup.attempt_unsubscribe) == (True, True)
    assert (cloud.name, cloud.host, cloud.port, cloud.username, cloud.password, cloud.client_id) == (
        "cloud", "cloud.example.com", 8883, "edge-7", "secret", "edge-7")
    assert (cloud.protocol_version, cloud.cafile, cloud.clean_session, cloud.notifications) == (
        5, "/etc/ca.pem", True, False)
    assert [(t.pattern, t.direction, t.qos, t.local_prefix, t.remote_prefix) for t in cloud.topics] == [
        ("sensors/#", "out", 1, "", ""), ("commands/+", "in", 2, "", ""),
        ("", "both", 0, "local/status", "remote/edge-7/status")]
    assert (backup.host, backup.port, backup.protocol_version, backup.clean_session) == ("10.0.0.2", 1883, 4, False)
    # Mosquitto's defaults: local_cleansession follows cleansession; backoff from 5 s to 30 s.
    assert (cloud.local_clean_session, cloud.restart_timeout) == (False, (1.0, 1.0))
    assert (backup.local_clean_session, backup.restart_timeout) == (None, (5.0, 30.0))
    assert [(t.pattern, t.direction, t.qos) for t in backup.topics] == [("#", "out", 0)]


def test_listener_security_is_kept_per_listener_with_per_listener_settings():
    result = translate("""\
allow_anonymous false
per_listener_settings true
listener 1883
allow_anonymous true
acl_file open.acl
listener 8883
certfile s.pem
keyfile s.key
cafile ca.pem
require_certificate true
use_subject_as_username true
password_file passwd
mount_point tls/
""")
    assert result.per_listener_settings and "--anonymous" not in result.args
    assert "--password-file" not in result.args and "--acl-file" not in result.args
    plain, tls = result.listeners["mqtt://*:1883"], result.listeners["mqtts://*:8883"]
    assert (plain.anonymous, plain.password_file, plain.acl_file, plain.identity, plain.mount_point) == (
        True, None, "open.acl", None, "")
    assert (tls.anonymous, tls.password_file, tls.acl_file, tls.identity, tls.mount_point) == (
        None, "passwd", None, "subject", "tls/")


def test_options_without_a_command_line_flag_become_settings():
    result = translate("listener 1883\nmessage_size_limit 100\nmax_inflight_bytes 5000\n"
                       "retain_available false\nallow_zero_length_clientid false\n"
                       "upgrade_outgoing_qos true\nmaximum_qos 1\nmax_topic_alias 7\n")
    assert result.settings == {"message_size_limit": 100, "max_inflight_bytes": 5000,
                               "retain_available": False, "allow_zero_length_clientid": False,
                               "upgrade_outgoing_qos": True}
    assert result.args[-4:] == ["--max-qos", "1", "--topic-alias-maximum", "7"]


def test_persistence_file_names_roosts_files_in_the_persistence_location():
    result = translate("listener 1883\ncheck_retain_source true\npersistence true\n"
                       "persistence_location /var/lib/mosquitto/\npersistence_file m.db\n")
    assert result.args[-4:] == ["--persist", "/var/lib/mosquitto", "--persist-file", "m.db"]
    # The publisher of a retained message is kept on disk: check_retain_source needs no warning.
    assert not result.ignored


@pytest.mark.parametrize(("lines", "args"), [
    ("", ["--persist", "."]),
    ("persistence_location /data\n", ["--persist", "/data"]),
    ("persistence_file state/edge.db\n", ["--persist", "state", "--persist-file", "edge.db"]),
    ("persistence_file broker\n", ["--persist", ".", "--persist-file", "broker"]),
])
def test_persistence_location_and_file_give_the_directory_and_the_base_name(lines, args):
    result = translate("listener 1883\npersistence true\n" + lines)
    assert result.args[-len(args):] == args and "--persist" not in result.args[:-len(args)]


def test_a_persistence_file_naming_no_file_is_refused():
    with pytest.raises(ConfigError, match="names no file"):
        translate("listener 1883\npersistence true\npersistence_file state/\n")
