"""The built-in dynamic security plugin, on a real broker with real clients (paho-mqtt and
Mosquitto's own `mosquitto_ctrl` where installed)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.broker.conftest import REPO, Client
from tests.broker.interop.mosquitto_process import free_port, wait_for_port

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = CONTROL + "/response"
SALT = b"0123456789ab"

# What `mosquitto_ctrl dynsec init FILE admin admin-pw` writes (its default ACL access too).
ADMIN_ACLS = [
    {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": True},
    {"acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "allow": True},
    {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": True},
    {"acltype": "unsubscribePattern", "topic": "#", "allow": True},
]


def _hash(password: str, iterations: int = 101) -> str:
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), SALT, iterations, 64)
    return base64.b64encode(digest).decode()


def write_initial(path: Path) -> Path:
    path.write_text(json.dumps({
        "clients": [{"username": "admin", "textName": "Dynsec admin user", "iterations": 101,
                     "password": _hash("admin-pw"), "salt": base64.b64encode(SALT).decode(),
                     "roles": [{"rolename": "admin"}]}],
        "roles": [{"rolename": "admin", "acls": ADMIN_ACLS}],
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True,
                             "subscribe": False, "unsubscribe": True},
    }))
    return path


@pytest.fixture
def dynsec_file(tmp_path: Path) -> Path:
    return write_initial(tmp_path / "dynamic-security.json")


@pytest.fixture
def broker(start_broker, dynsec_file):
    return start_broker("--dynsec-file", str(dynsec_file), anonymous=False)


def login(client_factory, port: int, username: str | None, password: str | None,
          client_id: str = "", version: int = 5) -> Client:
    client = client_factory(port, client_id, version)
    if username is not None:
        client.client.username_pw_set(username, password)
    return client


class Admin:
    """An administrator sending `{"commands": [...]}` and reading the answers."""

    def __init__(self, client_factory, port: int) -> None:
        self.client = login(client_factory, port, "admin", "admin-pw", "admin").connect()
        assert self.client.subscribe("$CONTROL/dynamic-security/#", 1) == [1]

    def send(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        return self.raw(json.dumps({"commands": list(commands)}).encode())

    def raw(self, payload: bytes) -> list[dict[str, Any]]:
        self.client.publish(CONTROL, payload, qos=1)
        message = self.client.expect()[0]
        assert message.topic == RESPONSE  # the request itself is never routed
        responses: list[dict[str, Any]] = json.loads(message.payload)["responses"]
        return responses

    def ok(self, *commands: dict[str, Any]) -> None:
        responses = self.send(*commands)
        assert all("error" not in r for r in responses), responses


def refused(client: Client) -> int:
    client.connect(wait=False)
    assert client.connected.wait(5), "no CONNACK"
    return int(client.connack[1].value)


def test_clients_log_in_with_the_password_the_file_or_the_admin_gives(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "alice", "password": "pw1"})
    login(client_factory, broker.port, "alice", "pw1").connect()
    # Bad credentials are 0x86 as with a password file (Mosquitto's plugin says 0x87).
    assert refused(login(client_factory, broker.port, "alice", "wrong")) == 0x86
    assert refused(login(client_factory, broker.port, "alice", None)) == 0x86
    assert refused(login(client_factory, broker.port, "nobody", "pw1")) == 0x86
    assert refused(login(client_factory, broker.port, None, None)) == 0x87  # no anonymous access


def test_a_client_bound_to_a_client_id_must_use_it(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "bob", "password": "pw", "clientid": "bob-1"})
    assert refused(login(client_factory, broker.port, "bob", "pw", "other")) == 0x87
    login(client_factory, broker.port, "bob", "pw", "bob-1").connect()


def test_roles_decide_publish_subscribe_receive_and_unsubscribe(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok(
        {"command": "createClient", "username": "dev", "password": "pw"},
        {"command": "createRole", "rolename": "sensors"},
        {"command": "addRoleACL", "rolename": "sensors", "acltype": "publishClientSend",
         "topic": "sensors/#", "allow": True},
        {"command": "addRoleACL", "rolename": "sensors", "acltype": "publishClientSend",
         "topic": "sensors/secret", "priority": 5, "allow": False},
        {"command": "addRoleACL", "rolename": "sensors", "acltype": "subscribePattern",
         "topic": "sensors/#", "allow": True},
        {"command": "addRoleACL", "rolename": "sensors", "acltype": "publishClientReceive",
         "topic": "sensors/hidden", "allow": False},
        {"command": "addRoleACL", "rolename": "sensors", "acltype": "unsubscribeLiteral",
         "topic": "sensors/#", "allow": False},
        {"command": "addClientRole", "username": "dev", "rolename": "sensors"},
    )
    dev = login(client_factory, broker.port, "dev", "pw", "dev").connect()
    assert [c.value for c in dev.subscribe("sensors/#", 1)] == [1]
    assert [c.value for c in dev.subscribe("other/#", 1)] == [0x87]
    for topic in ("sensors/a", "sensors/hidden", "sensors/secret", "other/x"):
        dev.publish(topic, b"v", qos=1)
    assert [m.topic for m in dev.collect(1.0)] == ["sensors/a"]
    assert [c.value for c in dev.unsubscribe("sensors/#")] == [0x87]
    dev.publish("sensors/b", b"still subscribed", qos=1)
    assert dev.expect()[0].topic == "sensors/b"


def test_a_change_disconnects_the_clients_it_concerns_and_applies_when_they_return(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "dev", "password": "pw"},
             {"command": "createClient", "username": "bystander", "password": "pw"},
             {"command": "createGroup", "groupname": "devices"},
             {"command": "addGroupClient", "groupname": "devices", "username": "dev"},
             {"command": "createRole", "rolename": "writer"})
    dev = login(client_factory, broker.port, "dev", "pw", "dev").connect()
    bystander = login(client_factory, broker.port, "bystander", "pw", "bystander").connect()
    denied = dev.client.publish("data/x", b"1", qos=1)
    denied.wait_for_publish(5)
    admin.ok({"command": "addRoleACL", "rolename": "writer", "acltype": "publishClientSend",
              "topic": "data/#", "allow": True},
             {"command": "addGroupRole", "groupname": "devices", "rolename": "writer"})
    assert dev.disconnected.wait(5)
    assert dev.disconnect_reason.value == 0x98  # administrative action
    assert not bystander.disconnected.is_set()
    admin.ok({"command": "createClient", "username": "watch", "password": "pw"},
             {"command": "createRole", "rolename": "reader"},
             {"command": "addRoleACL", "rolename": "reader", "acltype": "subscribeLiteral",
              "topic": "data/x", "allow": True})
    watcher = login(client_factory, broker.port, "watch", "pw", "watch").connect()
    assert [c.value for c in watcher.subscribe("data/x", 1)] == [0x87]
    admin.ok({"command": "addClientRole", "username": "watch", "rolename": "reader"})
    assert watcher.disconnected.wait(5)
    watcher = login(client_factory, broker.port, "watch", "pw", "watch").connect()
    assert [c.value for c in watcher.subscribe("data/x", 1)] == [1]
    dev = login(client_factory, broker.port, "dev", "pw", "dev").connect()
    dev.publish("data/x", b"now allowed", qos=1)
    assert watcher.expect()[0].payload == b"now allowed"


def test_a_disabled_client_is_disconnected_and_refused_until_enabled(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "dev", "password": "pw"})
    dev = login(client_factory, broker.port, "dev", "pw", "dev").connect()
    admin.ok({"command": "disableClient", "username": "dev"})
    assert dev.disconnected.wait(5) and dev.disconnect_reason.value == 0x98
    assert refused(login(client_factory, broker.port, "dev", "pw", "dev")) == 0x87
    admin.ok({"command": "enableClient", "username": "dev"})
    login(client_factory, broker.port, "dev", "pw", "dev").connect()
    admin.ok({"command": "deleteClient", "username": "dev"})
    assert refused(login(client_factory, broker.port, "dev", "pw", "dev")) == 0x86


def test_only_clients_a_role_grants_it_may_use_the_control_topic(start_broker, dynsec_file, client_factory):
    broker = start_broker("--dynsec-file", str(dynsec_file), anonymous=True)
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "setDefaultACLAccess", "acls": [
        {"acltype": "publishClientSend", "allow": True}, {"acltype": "subscribe", "allow": True}]},
             {"command": "createClient", "username": "user", "password": "pw"})
    for client in (login(client_factory, broker.port, "user", "pw", "user"),
                   login(client_factory, broker.port, None, None, "anon")):
        client.connect()
        # The default access grants every other topic, never $CONTROL.
        assert [c.value for c in client.subscribe("$CONTROL/dynamic-security/#")] == [0x87]
        info = client.client.publish(CONTROL, json.dumps(
            {"commands": [{"command": "createClient", "username": "intruder"}]}), qos=1)
        info.wait_for_publish(5)
        assert info.rc == 0
        client.publish("open/topic", b"default access allows it", qos=1)
    admin.client.expect_none(0.5)
    listed = admin.send({"command": "listClients"})[0]["data"]
    assert listed == {"totalCount": 2, "clients": ["admin", "user"]}


def test_errors_are_answered_as_mosquitto_words_them(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    assert admin.raw(b"{not json") == [{"command": "Unknown command", "error": "Payload not valid JSON"}]
    assert admin.raw(b"{}") == [{"command": "Unknown command", "error": "Invalid/missing commands"}]
    assert admin.send(
        {"command": "frobnicate", "correlationData": "1"},
        {"command": "getClient", "username": "ghost", "correlationData": "2"},
        {"command": "addRoleACL", "rolename": "admin", "acltype": "publishClientSend", "topic": "a/#/b"},
        {"command": "createClient", "username": "\uffff"},
        {"command": "deleteGroup", "groupname": "none"},
        {"command": "modifyRole", "rolename": "none"},
    ) == [
        {"command": "frobnicate", "error": "Unknown command", "correlationData": "1"},
        {"command": "getClient", "error": "Client not found", "correlationData": "2"},
        {"command": "addRoleACL", "error": "Invalid ACL topic"},
        {"command": "createClient", "error": "Username not valid UTF-8"},
        {"command": "deleteGroup", "error": "Group not found"},
        {"command": "modifyRole", "error": "Role does not exist"},
    ]


def test_getters_answer_with_the_data_mosquitto_gives(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createRole", "rolename": "r", "textname": "R"},
             {"command": "createGroup", "groupname": "g", "roles": [{"rolename": "r", "priority": 3}]},
             {"command": "createClient", "username": "c", "clientid": "cid", "password": "p",
              "roles": [{"rolename": "r"}], "groups": [{"groupname": "g", "priority": 2}]},
             {"command": "addRoleACL", "rolename": "r", "acltype": "subscribeliteral",
              "topic": "x/y", "allow": True, "priority": 4})
    client, group, role = (r["data"] for r in admin.send(
        {"command": "getClient", "username": "c"}, {"command": "getGroup", "groupname": "g"},
        {"command": "getRole", "rolename": "r"}))
    assert client == {"client": {"username": "c", "clientid": "cid", "roles": [{"rolename": "r"}],
                                 "groups": [{"groupname": "g", "priority": 2}]}}
    assert group == {"group": {"groupname": "g", "clients": [{"username": "c"}],
                               "roles": [{"rolename": "r", "priority": 3}]}}
    assert role == {"role": {"rolename": "r", "textname": "R", "acls": [
        {"acltype": "subscribeLiteral", "topic": "x/y", "priority": 4, "allow": True}]}}
    assert admin.send({"command": "listRoles", "verbose": False, "count": 1, "offset": 1})[0]["data"] \
        == {"totalCount": 2, "roles": ["r"]}


def test_every_change_is_saved_atomically_and_loaded_at_the_next_start(broker, dynsec_file, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "kept", "password": "pw"},
             {"command": "createGroup", "groupname": "g"},
             {"command": "setAnonymousGroup", "groupname": "g"})
    saved = json.loads(dynsec_file.read_text())
    assert [c["username"] for c in saved["clients"]] == ["admin", "kept"]
    kept = next(c for c in saved["clients"] if c["username"] == "kept")
    salt = base64.b64decode(kept["salt"])
    assert len(salt) == 12 and kept["iterations"] == 101
    assert base64.b64decode(kept["password"]) == hashlib.pbkdf2_hmac("sha512", b"pw", salt, 101, 64)
    assert saved["anonymousGroup"] == "g"
    assert stat.S_IMODE(dynsec_file.stat().st_mode) == 0o600  # it holds password hashes
    assert not list(dynsec_file.parent.glob("*.new"))
    broker.restart()
    login(client_factory, broker.port, "kept", "pw", "kept").connect()
    admin = Admin(client_factory, broker.port)
    assert admin.send({"command": "getAnonymousGroup"})[0]["data"] == {"group": {"groupname": "g"}}


@pytest.mark.skipif(shutil.which("mosquitto_ctrl") is None, reason="mosquitto_ctrl not installed")
def test_mosquitto_ctrl_initialises_and_administers_the_broker(start_broker, tmp_path, client_factory):
    path = tmp_path / "ds.json"
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(path), "root", "root-pw"], check=True,
                   capture_output=True)
    broker = start_broker("--dynsec-file", str(path), anonymous=False)

    def ctrl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(broker.port), "-u",
                               "root", "-P", "root-pw", "dynsec", *args],
                              capture_output=True, text=True, timeout=20)

    assert ctrl("createClient", "carol", "-p", "carol-pw").returncode == 0
    assert ctrl("createRole", "chat").returncode == 0
    assert ctrl("addRoleACL", "chat", "publishClientSend", "chat/#", "allow").returncode == 0
    assert ctrl("addRoleACL", "chat", "subscribePattern", "chat/#", "allow").returncode == 0
    assert ctrl("addClientRole", "carol", "chat").returncode == 0
    again = ctrl("createClient", "carol", "-p", "x")
    assert "Client already exists" in again.stdout + again.stderr
    shown = ctrl("getClient", "carol").stdout
    assert "carol" in shown and "chat" in shown
    carol = login(client_factory, broker.port, "carol", "carol-pw", "carol").connect()
    assert [c.value for c in carol.subscribe("chat/#", 1)] == [1]
    carol.publish("chat/room", b"hi", qos=1)
    assert carol.expect()[0].payload == b"hi"
    wrong = subprocess.run(["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(broker.port), "-u",
                            "carol", "-P", "carol-pw", "dynsec", "listClients"],
                           capture_output=True, text=True, timeout=20)
    assert "carol" not in wrong.stdout  # carol has no right to the control topic


def test_the_mosquitto_conf_plugin_line_turns_it_on(start_broker, dynsec_file, tmp_path, client_factory):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("allow_anonymous false\n"
                    "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
                    f"plugin_opt_config_file {dynsec_file}\n")
    broker = start_broker("--config", str(conf), anonymous=False)
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "alice", "password": "pw"})
    login(client_factory, broker.port, "alice", "pw").connect()


def test_a_missing_file_stops_the_start(tmp_path):
    result = subprocess.run([sys.executable, "-m", "broker", "--bind", "127.0.0.1:0",
                             "--dynsec-file", str(tmp_path / "none.json")], cwd=REPO,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "mosquitto_ctrl dynsec init" in result.stderr


@pytest.mark.skipif(not Path("/usr/sbin/mosquitto").exists()
                    or not Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so").exists(),
                    reason="Debian's mosquitto with its dynamic security plugin not installed")
def test_mosquitto_reads_the_file_roost_wrote(broker, dynsec_file, tmp_path, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "moved", "password": "moved-pw"},
             {"command": "createRole", "rolename": "r"},
             {"command": "addRoleACL", "rolename": "r", "acltype": "subscribePattern",
              "topic": "m/#", "allow": True},
             {"command": "addClientRole", "username": "moved", "rolename": "r"})
    broker.stop()
    port = free_port()
    conf = tmp_path / "real.conf"
    # Started as root, Mosquitto would become user mosquitto, who cannot read the 0600 file.
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
                    "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
                    f"plugin_opt_config_file {dynsec_file}\n")
    real = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_for_port(port, real)
        moved = login(client_factory, port, "moved", "moved-pw", "moved").connect()
        assert [c.value for c in moved.subscribe("m/#", 1)] == [1]
        assert [c.value for c in moved.subscribe("other", 1)] == [0x87]
        assert refused(login(client_factory, port, "moved", "wrong", "x")) == 0x87  # Mosquitto's code
    finally:
        real.terminate()
        real.wait(10)



def test_a_request_at_qos_2_is_answered_and_completed(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    info = admin.client.client.publish(CONTROL, json.dumps(
        {"commands": [{"command": "getAnonymousGroup"}]}), qos=2)
    info.wait_for_publish(5)
    assert info.is_published()  # PUBREC, PUBREL, PUBCOMP went through
    message = admin.client.expect()[0]
    assert json.loads(message.payload) == {"responses": [
        {"command": "getAnonymousGroup", "data": {"group": {"groupname": ""}}}]}


def test_a_will_on_the_control_topic_is_refused(broker, client_factory):
    sneaky = login(client_factory, broker.port, "admin", "admin-pw", "sneaky")
    sneaky.client.will_set(CONTROL, json.dumps({"commands": [{"command": "deleteClient",
                                                              "username": "admin"}]}), 0)
    assert refused(sneaky) == 0x87


def test_a_disconnected_client_leaves_no_will(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createClient", "username": "dev", "password": "pw"},
             {"command": "createRole", "rolename": "wills"},
             {"command": "addRoleACL", "rolename": "wills", "acltype": "publishClientSend",
              "topic": "wills/#", "allow": True},
             {"command": "addRoleACL", "rolename": "wills", "acltype": "subscribePattern",
              "topic": "wills/#", "allow": True},
             {"command": "addClientRole", "username": "dev", "rolename": "wills"},
             {"command": "createClient", "username": "listener", "password": "pw",
              "roles": [{"rolename": "wills"}]})
    listener = login(client_factory, broker.port, "listener", "pw", "listener").connect()
    assert [c.value for c in listener.subscribe("wills/#", 1)] == [1]
    dev = login(client_factory, broker.port, "dev", "pw", "dev")
    dev.connect(will=("wills/dev", b"gone", 1, False))
    admin.ok({"command": "setClientPassword", "username": "dev", "password": "new"})
    assert dev.disconnected.wait(5) and dev.disconnect_reason.value == 0x98
    listener.expect_none(1.0)  # as with Mosquitto, a kicked client's will is not sent


def test_a_modified_role_applies_to_the_next_publish_without_a_disconnect(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    admin.ok({"command": "createRole", "rolename": "r", "acls": [
        {"acltype": "publishClientSend", "topic": "a/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "#", "allow": True}]},
             {"command": "createClient", "username": "dev", "password": "pw", "roles": [{"rolename": "r"}]})
    dev = login(client_factory, broker.port, "dev", "pw", "dev").connect()
    assert [c.value for c in dev.subscribe("#", 1)] == [1]
    dev.publish("a/1", b"allowed", qos=1)
    assert dev.expect()[0].topic == "a/1"
    admin.ok({"command": "modifyRole", "rolename": "r", "acls": [
        {"acltype": "publishClientSend", "topic": "b/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "#", "allow": True}]})
    assert admin.send({"command": "addClientRole", "username": "dev", "rolename": "r"}) == [
        {"command": "addClientRole", "error": "Internal error"}]  # Mosquitto's words
    dev.publish("a/2", b"no longer", qos=1)
    dev.publish("b/1", b"now", qos=1)
    assert [m.topic for m in dev.collect(1.0)] == ["b/1"]
    assert not dev.disconnected.is_set()


def test_a_receive_deny_added_later_reaches_a_live_subscription(broker, client_factory):
    admin = Admin(client_factory, broker.port)
    acls = [{"acltype": "publishClientSend", "topic": "feed/#", "allow": True},
            {"acltype": "subscribePattern", "topic": "feed/#", "allow": True},
            {"acltype": "publishClientReceive", "topic": "feed/#", "allow": True}]
    admin.ok({"command": "createRole", "rolename": "r", "acls": acls},
             {"command": "createClient", "username": "dev", "password": "pw", "roles": [{"rolename": "r"}]})
    dev = login(client_factory, broker.port, "dev", "pw", "dev").connect()
    assert [c.value for c in dev.subscribe("feed/#", 1)] == [1]
    dev.publish("feed/hidden", b"visible for now", qos=1)
    assert dev.expect()[0].topic == "feed/hidden"
    # modifyRole disconnects no one: the live subscription itself must change.
    admin.ok({"command": "modifyRole", "rolename": "r", "acls": [
        {"acltype": "publishClientReceive", "topic": "feed/hidden", "allow": False,
         "priority": 1}, *acls]})
    dev.publish("feed/hidden", b"no longer", qos=1)
    dev.publish("feed/open", b"still", qos=1)
    assert [m.topic for m in dev.collect(1.0)] == ["feed/open"]
    assert not dev.disconnected.is_set()
