"""Clients, groups and roles of Mosquitto's dynamic security plugin, and its JSON file.

The file is the one Mosquitto's plugin (and `mosquitto_ctrl dynsec init`) writes, read and
written with the same keys, so a deployment can move between the two brokers. Passwords are
PBKDF2-HMAC-SHA512 with a 12 byte salt, hash, salt and iteration count base64 in the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.config_files import ConfigFileError

SALT_LENGTH = 12
HASH_LENGTH = 64
ITERATIONS = 101
"""Mosquitto's plugin and `mosquitto_ctrl` hash new passwords with this many rounds."""

PUBLISH_SEND = "publishClientSend"
PUBLISH_RECEIVE = "publishClientReceive"
SUBSCRIBE_LITERAL = "subscribeLiteral"
SUBSCRIBE_PATTERN = "subscribePattern"
UNSUBSCRIBE_LITERAL = "unsubscribeLiteral"
UNSUBSCRIBE_PATTERN = "unsubscribePattern"
ACL_TYPES = (PUBLISH_SEND, PUBLISH_RECEIVE, SUBSCRIBE_LITERAL, SUBSCRIBE_PATTERN,
             UNSUBSCRIBE_LITERAL, UNSUBSCRIBE_PATTERN)
"""In the order Mosquitto lists a role's ACLs."""

# Default access keys: "subscribe" and "unsubscribe" stand for both their ACL types.
DEFAULT_KEYS = (PUBLISH_SEND, PUBLISH_RECEIVE, "subscribe", "unsubscribe")


class DynsecFileError(ConfigFileError):
    """A dynamic security file that cannot be read."""


def get(obj: Any, key: str) -> Any:
    """A member of a JSON object, the key compared without case as cJSON does."""
    if not isinstance(obj, dict):
        return None
    if key in obj:
        return obj[key]
    lowered = key.lower()
    for name, value in obj.items():
        if name.lower() == lowered:
            return value
    return None


def acl_type(name: str) -> str | None:
    """The canonical spelling of an ACL type (Mosquitto accepts any case)."""
    lowered = name.lower()
    for known in ACL_TYPES:
        if known.lower() == lowered:
            return known
    return None


@dataclass(slots=True)
class Password:
    hash: bytes
    salt: bytes
    iterations: int

    @classmethod
    def create(cls, password: str) -> Password:
        salt = secrets.token_bytes(SALT_LENGTH)
        return cls(_pbkdf2(password.encode("utf-8"), salt, ITERATIONS), salt, ITERATIONS)

    def verify(self, password: bytes) -> bool:
        return hmac.compare_digest(_pbkdf2(password, self.salt, self.iterations), self.hash)


def _pbkdf2(password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password, salt, iterations, HASH_LENGTH)


@dataclass(slots=True)
class Acl:
    topic: str
    priority: int
    allow: bool


@dataclass(slots=True)
class Role:
    name: str
    text_name: str | None = None
    text_description: str | None = None
    acls: dict[str, list[Acl]] = field(default_factory=lambda: {t: [] for t in ACL_TYPES})

    def add_acl(self, kind: str, acl: Acl) -> None:
        """Kept highest priority first; an equal priority goes after the ones there."""
        entries = self.acls[kind]
        index = len(entries)
        for i, existing in enumerate(entries):
            if existing.priority < acl.priority:
                index = i
                break
        entries.insert(index, acl)

    def find_acl(self, kind: str, topic: str) -> Acl | None:
        return next((acl for acl in self.acls[kind] if acl.topic == topic), None)


@dataclass(slots=True)
class Client:
    username: str
    password: Password | None = None
    client_id: str | None = None
    text_name: str | None = None
    text_description: str | None = None
    disabled: bool = False
    roles: dict[str, int] = field(default_factory=dict)
    """Role name to priority (-1: none given)."""
    groups: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Group:
    name: str
    text_name: str | None = None
    text_description: str | None = None
    roles: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)


def by_priority(entries: dict[str, int]) -> list[tuple[str, int]]:
    """Role or group memberships in the order Mosquitto checks them: priority, then name."""
    return sorted(entries.items(), key=lambda item: (-item[1], item[0]))


@dataclass(slots=True)
class State:
    clients: dict[str, Client] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    anonymous_group: str | None = None
    default_access: dict[str, bool] = field(
        default_factory=lambda: {PUBLISH_SEND: False, PUBLISH_RECEIVE: False,
                                 "subscribe": False, "unsubscribe": False})

    # Membership, kept on both sides ---------------------------------------------------

    def add_group_client(self, group: Group, client: Client, priority: int) -> bool:
        if client.username in group.clients:
            return False
        group.clients[client.username] = priority
        client.groups[group.name] = priority
        return True

    def remove_group_client(self, group: Group, client: Client) -> None:
        group.clients.pop(client.username, None)
        client.groups.pop(group.name, None)

    def delete_client(self, client: Client) -> None:
        for name in list(client.groups):
            self.groups[name].clients.pop(client.username, None)
        del self.clients[client.username]

    def delete_group(self, group: Group) -> None:
        for username in group.clients:
            self.clients[username].groups.pop(group.name, None)
        del self.groups[group.name]

    def delete_role(self, role: Role) -> None:
        for client in self.clients.values():
            client.roles.pop(role.name, None)
        for group in self.groups.values():
            group.roles.pop(role.name, None)
        del self.roles[role.name]

    def role_holders(self, role: str) -> tuple[set[str], bool]:
        """Usernames whose rights come from `role`, and whether anonymous clients' do."""
        users = {c.username for c in self.clients.values() if role in c.roles}
        anonymous = False
        for group in self.groups.values():
            if role in group.roles:
                users.update(group.clients)
                anonymous = anonymous or group.name == self.anonymous_group
        return users, anonymous

    # File --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The document Mosquitto's plugin saves, key for key."""
        out: dict[str, Any] = {"defaultACLAccess": dict(self.default_access)}
        clients = []
        for client in sorted(self.clients.values(), key=lambda c: c.username):
            entry: dict[str, Any] = {"username": client.username}
            _put_optional(entry, client.client_id, client.text_name, client.text_description)
            if client.disabled:
                entry["disabled"] = True
            entry["roles"] = roles_json(client.roles)
            if client.password is not None:
                entry["password"] = base64.b64encode(client.password.hash).decode()
                entry["salt"] = base64.b64encode(client.password.salt).decode()
                entry["iterations"] = client.password.iterations
            clients.append(entry)
        out["clients"] = clients
        groups = []
        for group in sorted(self.groups.values(), key=lambda g: g.name):
            entry = {"groupname": group.name}
            _put_optional(entry, None, group.text_name, group.text_description)
            entry["roles"] = roles_json(group.roles)
            entry["clients"] = [_with_priority({"username": u}, p)
                                for u, p in sorted(group.clients.items())]
            groups.append(entry)
        out["groups"] = groups
        if self.anonymous_group is not None:
            out["anonymousGroup"] = self.anonymous_group
        out["roles"] = [role_json(role) for role in sorted(self.roles.values(), key=lambda r: r.name)]
        return out


def _put_optional(entry: dict[str, Any], client_id: str | None, text_name: str | None,
                  text_description: str | None) -> None:
    if client_id is not None:
        entry["clientid"] = client_id
    if text_name is not None:
        entry["textname"] = text_name
    if text_description is not None:
        entry["textdescription"] = text_description


def _with_priority(entry: dict[str, Any], priority: int) -> dict[str, Any]:
    if priority != -1:
        entry["priority"] = priority
    return entry


def roles_json(roles: dict[str, int]) -> list[dict[str, Any]]:
    return [_with_priority({"rolename": name}, p) for name, p in by_priority(roles)]


def groups_json(groups: dict[str, int]) -> list[dict[str, Any]]:
    return [_with_priority({"groupname": name}, p) for name, p in by_priority(groups)]


def role_json(role: Role) -> dict[str, Any]:
    entry: dict[str, Any] = {"rolename": role.name}
    _put_optional(entry, None, role.text_name, role.text_description)
    entry["acls"] = [{"acltype": kind, "topic": acl.topic, "priority": acl.priority, "allow": acl.allow}
                     for kind in ACL_TYPES for acl in role.acls[kind]]
    return entry


def json_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def load_acls(role: Role, acls: Any) -> None:
    """ACL entries of a role from JSON; entries without a known type or a topic are skipped,
    and a topic already there for that type keeps its first entry (as Mosquitto loads them)."""
    if not isinstance(acls, list):
        return
    for entry in acls:
        kind_name, topic = get(entry, "acltype"), get(entry, "topic")
        if not isinstance(kind_name, str) or not isinstance(topic, str):
            continue
        kind = acl_type(kind_name)
        if kind is None or role.find_acl(kind, topic) is not None:
            continue
        priority = json_int(get(entry, "priority"))
        allow = get(entry, "allow")
        role.add_acl(kind, Acl(topic, 0 if priority is None else priority,
                               allow if isinstance(allow, bool) else False))


def _str(obj: Any, key: str) -> str | None:
    value = get(obj, key)
    return value if isinstance(value, str) else None


def _priority(obj: Any) -> int:
    value = json_int(get(obj, "priority"))
    return -1 if value is None else value


def _b64(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


def parse(document: Any) -> State:
    """A State from the file's JSON, skipping what Mosquitto's loader skips."""
    state = State()
    if not isinstance(document, dict):
        raise DynsecFileError("not a JSON object")
    defaults = get(document, "defaultACLAccess")
    if isinstance(defaults, dict):
        for key in DEFAULT_KEYS:
            value = get(defaults, key)
            if isinstance(value, bool):
                state.default_access[key] = value
    for entry in _array(document, "roles"):
        name = _str(entry, "rolename")
        if name is None or name in state.roles:
            continue
        role = Role(name, _str(entry, "textname"), _str(entry, "textdescription"))
        load_acls(role, get(entry, "acls"))
        state.roles[name] = role
    for entry in _array(document, "clients"):
        username = _str(entry, "username")
        if username is None or username in state.clients:
            continue
        client = Client(username, client_id=_str(entry, "clientid"),
                        text_name=_str(entry, "textname"),
                        text_description=_str(entry, "textdescription"),
                        disabled=get(entry, "disabled") is True)
        iterations = json_int(get(entry, "iterations"))
        salt, digest = _b64(_str(entry, "salt")), _b64(_str(entry, "password"))
        if _str(entry, "salt") is not None and _str(entry, "password") is not None and iterations and iterations > 0:
            if salt is None or len(salt) != SALT_LENGTH or digest is None or len(digest) != HASH_LENGTH:
                continue  # Mosquitto drops a client whose hash it cannot decode
            client.password = Password(digest, salt, iterations)
        for role_entry in _list(get(entry, "roles")):
            rolename = _str(role_entry, "rolename")
            if rolename is not None and rolename in state.roles:
                client.roles.setdefault(rolename, _priority(role_entry))
        state.clients[username] = client
    for entry in _array(document, "groups"):
        name = _str(entry, "groupname")
        if name is None or name in state.groups:
            continue
        group = Group(name, _str(entry, "textname"), _str(entry, "textdescription"))
        for role_entry in _list(get(entry, "roles")):
            rolename = _str(role_entry, "rolename")
            if rolename is not None and rolename in state.roles:
                group.roles.setdefault(rolename, _priority(role_entry))
        state.groups[name] = group
        for client_entry in _list(get(entry, "clients")):
            username = _str(client_entry, "username")
            member = state.clients.get(username) if username is not None else None
            if member is not None:
                state.add_group_client(group, member, _priority(client_entry))
    anonymous = _str(document, "anonymousGroup")
    if anonymous is not None and anonymous in state.groups:
        state.anonymous_group = anonymous
    return state


def _array(document: Any, key: str) -> list[Any]:
    value = get(document, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DynsecFileError(f"{key!r} is not an array")
    return [entry for entry in value if isinstance(entry, dict)]


def _list(value: Any) -> list[Any]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def load(path: Path) -> State:
    """The file's state; an empty file is an empty state, as for Mosquitto."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise DynsecFileError(f"{path}: no such file (create one with `mosquitto_ctrl dynsec "
                              "init FILE ADMIN_USERNAME`)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DynsecFileError(f"{path}: {error}") from None
    if not text.strip():
        return State()
    try:
        return parse(json.loads(text))
    except json.JSONDecodeError as error:
        raise DynsecFileError(f"{path}: not valid JSON: {error}") from None
    except DynsecFileError as error:
        raise DynsecFileError(f"{path}: {error}") from None


def save(path: Path, state: State) -> None:
    """Write the file so that a crash leaves the old or the new one, never a torn one:
    a temporary file beside it, fsynced, renamed over it, and the directory fsynced."""
    data = json.dumps(state.to_json(), indent="\t").encode("utf-8")
    temporary = path.with_name(path.name + ".new")
    # Owner only, as Mosquitto writes it: the file holds password hashes.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
