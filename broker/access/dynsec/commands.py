"""The `$CONTROL/dynamic-security/v1` commands, answered as Mosquitto's plugin answers them.

A request is `{"commands": [{"command": NAME, ...}, ...]}`; the answer lists one response per
command, `{"command": NAME, "error": TEXT}` on failure, with `data` for the getters and the
request's `correlationData` echoed. Command names and ACL types are matched without case.
The error texts are Mosquitto's, word for word: tools such as `mosquitto_ctrl` show them.

A change names the clients it concerns in `kick` where Mosquitto's plugin disconnects them
(MQTT 5: 0x98, administrative action) so they reconnect under the new rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from broker.mqtt.topics import filter_problem

from .state import (
    ACL_TYPES,
    DEFAULT_KEYS,
    Acl,
    Client,
    Group,
    Password,
    Role,
    State,
    acl_type,
    get,
    groups_json,
    json_int,
    load_acls,
    role_json,
    roles_json,
)

logger = logging.getLogger("broker.dynsec")


class Failed(Exception):
    """A command refused with Mosquitto's error text."""


def valid_utf8(text: str) -> bool:
    """Mosquitto's rule for names: UTF-8 without NUL, control characters or non-characters."""
    for char in text:
        code = ord(char)
        if (code <= 0x1F or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF
                or 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE):
            return False
    return len(text.encode("utf-8", "surrogatepass")) <= 65536


def _valid_topic_filter(topic: str) -> bool:
    # Mosquitto's check knows no `$share/`: an ACL's filter is a plain one.
    return filter_problem(topic) is None


class Request:
    """One request's commands run against the state, with what they changed."""

    def __init__(self, state: State, who: str) -> None:
        self.state = state
        self.who = who
        self.responses: list[dict[str, Any]] = []
        self.changed = False
        self.kick: set[str] = set()
        self.kick_anonymous = False

    # Plumbing ------------------------------------------------------------------------

    def run(self, payload: bytes) -> None:
        import json

        try:
            document = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.reply("Unknown command", "Payload not valid JSON")
            return
        commands = get(document, "commands")
        if not isinstance(commands, list):
            self.reply("Unknown command", "Invalid/missing commands")
            return
        # Mosquitto echoes the previous command's correlation data on a command it cannot
        # read at all.
        correlation: str | None = None
        for command in commands:
            if not isinstance(command, dict):
                self.reply("Unknown command", "Command not an object", correlation)
                continue
            name = get(command, "command")
            if not isinstance(name, str):
                self.reply("Unknown command", "Missing command", correlation)
                continue
            correlation = get(command, "correlationData")
            if correlation is not None and not isinstance(correlation, str):
                self.reply(name, "Invalid correlationData data type.")
                return  # Mosquitto stops at this one
            handler = HANDLERS.get(name.lower())
            if handler is None:
                self.reply(name, "Unknown command", correlation)
                continue
            canonical = handler.__name__.removeprefix("cmd_")
            try:
                data = handler(self, command)
            except Failed as error:
                self.reply(canonical, str(error), correlation)
                continue
            self.reply(canonical, None, correlation, data)

    def reply(self, command: str, error: str | None, correlation: str | None = None,
              data: dict[str, Any] | None = None) -> None:
        response: dict[str, Any] = {"command": command}
        if data is not None:
            response["data"] = data
        if error is not None:
            response["error"] = error
        if correlation is not None:
            response["correlationData"] = correlation
        self.responses.append(response)

    def log(self, text: str) -> None:
        logger.info("dynsec: %s | %s", self.who, text)

    def change(self, text: str) -> None:
        self.changed = True
        self.log(text)

    def kick_role(self, role: str) -> None:
        users, anonymous = self.state.role_holders(role)
        self.kick |= users
        self.kick_anonymous = self.kick_anonymous or anonymous

    def kick_group(self, group: Group) -> None:
        self.kick.update(group.clients)
        if group.name == self.state.anonymous_group:
            self.kick_anonymous = True

    # Field readers ---------------------------------------------------------------------

    def name(self, command: dict[str, Any], key: str, missing: str, invalid: str) -> str:
        value = get(command, key)
        if not isinstance(value, str):
            raise Failed(missing)
        if not valid_utf8(value):
            raise Failed(invalid)
        return value

    def username(self, command: dict[str, Any]) -> str:
        return self.name(command, "username", "Invalid/missing username", "Username not valid UTF-8")

    def groupname(self, command: dict[str, Any]) -> str:
        return self.name(command, "groupname", "Invalid/missing groupname", "Group name not valid UTF-8")

    def rolename(self, command: dict[str, Any]) -> str:
        return self.name(command, "rolename", "Invalid/missing rolename", "Role name not valid UTF-8")

    def client(self, command: dict[str, Any]) -> Client:
        client = self.state.clients.get(self.username(command))
        if client is None:
            raise Failed("Client not found")
        return client

    def group(self, command: dict[str, Any]) -> Group:
        group = self.state.groups.get(self.groupname(command))
        if group is None:
            raise Failed("Group not found")
        return group

    def role(self, command: dict[str, Any], not_found: str = "Role not found") -> Role:
        role = self.state.roles.get(self.rolename(command))
        if role is None:
            raise Failed(not_found)
        return role

    def role_list(self, command: dict[str, Any]) -> dict[str, int] | None:
        """The `roles` array: None when absent; Failed for an unknown or invalid role."""
        entries = get(command, "roles")
        if entries is None:
            return None
        if not isinstance(entries, list):
            raise Failed("'roles' not an array or missing/invalid rolename")
        roles: dict[str, int] = {}
        for entry in entries:
            rolename = get(entry, "rolename")
            if not isinstance(rolename, str):
                raise Failed("'roles' not an array or missing/invalid rolename")
            if rolename not in self.state.roles:
                raise Failed("Role not found")
            roles.setdefault(rolename, _priority(entry))
        return roles


def _priority(entry: Any) -> int:
    value = json_int(get(entry, "priority"))
    return -1 if value is None else value


def _optional_string(command: dict[str, Any], key: str, error: str) -> str | None:
    value = get(command, key)
    if value is not None and not isinstance(value, str):
        raise Failed(error)
    return value


def _string_if_given(command: dict[str, Any], key: str) -> str | None:
    value = get(command, key)
    return value if isinstance(value, str) else None


def _page(items: list[Any], command: dict[str, Any]) -> list[Any]:
    count = json_int(get(command, "count"))
    offset = json_int(get(command, "offset")) or 0
    items = items[max(offset, 0):]
    if count is not None and count >= 0:
        items = items[:max(count, 1)]  # Mosquitto lists at least one even for count 0
    return items


def _listing(r: Request, command: dict[str, Any], what: str, items: dict[str, Any],
             describe: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """listClients, listGroups, listRoles: the names by name, or whole entries with verbose; paged."""
    verbose = get(command, "verbose") is True
    listed = [describe(items[name]) if verbose else name for name in _page(sorted(items), command)]
    r.log(f"list{what.capitalize()}")
    return {"totalCount": len(items), what: listed}


# Default access ---------------------------------------------------------------------------

def cmd_setDefaultACLAccess(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    acls = get(command, "acls")
    if not isinstance(acls, list):
        raise Failed("Missing/invalid actions array")
    for entry in acls:
        kind, allow = get(entry, "acltype"), get(entry, "allow")
        if not isinstance(kind, str) or not isinstance(allow, bool):
            continue
        for key in DEFAULT_KEYS:
            if key.lower() == kind.lower():
                r.state.default_access[key] = allow
                r.change(f"setDefaultACLAccess | acltype={kind} | allow={str(allow).lower()}")
    r.changed = True


def cmd_getDefaultACLAccess(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    r.log("getDefaultACLAccess")
    return {"acls": [{"acltype": key, "allow": r.state.default_access[key]} for key in DEFAULT_KEYS]}


# Clients ----------------------------------------------------------------------------------

def cmd_createClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username = r.username(command)
    password = _optional_string(command, "password", "Invalid/missing password")
    client_id = _optional_string(command, "clientid", "Invalid/missing client id")
    if client_id is not None and not valid_utf8(client_id):
        raise Failed("Client ID not valid UTF-8")
    text_name = _optional_string(command, "textname", "Invalid/missing textname")
    text_description = _optional_string(command, "textdescription", "Invalid/missing textdescription")
    state = r.state
    if username in state.clients:
        raise Failed("Client already exists")
    client = Client(username, client_id=client_id or None, text_name=text_name,
                    text_description=text_description)
    if password is not None:
        client.password = Password.create(password)
    roles = r.role_list(command)
    groups: list[tuple[Group, int]] = []
    entries = get(command, "groups")
    for entry in entries if isinstance(entries, list) else []:
        groupname = get(entry, "groupname")
        if isinstance(groupname, str):
            group = state.groups.get(groupname)
            if group is None:
                raise Failed("Group not found")
            groups.append((group, _priority(entry)))
    client.roles = roles or {}
    state.clients[username] = client
    for group, priority in groups:
        state.add_group_client(group, client, priority)
    r.change(f"createClient | username={username} | password={'*****' if password is not None else 'no password'}")


def cmd_deleteClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username = get(command, "username")
    if not isinstance(username, str):
        raise Failed("Invalid/missing username")
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    r.state.delete_client(client)
    r.kick.add(username)
    r.change(f"deleteClient | username={username}")


def cmd_disableClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    client = r.client(command)
    client.disabled = True
    r.kick.add(client.username)
    r.change(f"disableClient | username={client.username}")


def cmd_enableClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    client = r.client(command)
    client.disabled = False
    r.change(f"enableClient | username={client.username}")


def cmd_setClientId(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username = r.username(command)
    client_id = _optional_string(command, "clientid", "Invalid/missing client ID")
    if client_id is not None and not valid_utf8(client_id):
        raise Failed("Client ID not valid UTF-8")
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    client.client_id = client_id or None
    r.kick.add(username)
    r.change(f"setClientId | username={username} | clientid={client.client_id}")


def cmd_setClientPassword(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username = r.username(command)
    password = get(command, "password")
    if not isinstance(password, str):
        raise Failed("Invalid/missing password")
    if not password:
        raise Failed("Empty password is not allowed")
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    client.password = Password.create(password)
    r.kick.add(username)
    r.change(f"setClientPassword | username={username} | password=******")


def cmd_modifyClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    state = r.state
    client = r.client(command)
    client_id = get(command, "clientid")
    password = get(command, "password")
    text_name = _string_if_given(command, "textname")
    text_description = _string_if_given(command, "textdescription")
    roles = r.role_list(command)
    entries = get(command, "groups")
    groups: list[tuple[Group, int]] | None = None
    if isinstance(entries, list):
        groups = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            groupname = get(entry, "groupname")
            if not isinstance(groupname, str):
                raise Failed("'groups' contains an object with an invalid 'groupname'")
            group = state.groups.get(groupname)
            if group is None:
                raise Failed("'groups' contains an object with a 'groupname' that does not exist")
            groups.append((group, _priority(entry)))
    if groups is not None:
        for name in list(client.groups):
            state.remove_group_client(state.groups[name], client)
        for group, priority in groups:
            state.add_group_client(group, client, priority)
    if isinstance(password, str) and password:
        client.password = Password.create(password)
    if isinstance(client_id, str):
        client.client_id = client_id or None
    if text_name is not None:
        client.text_name = text_name
    if text_description is not None:
        client.text_description = text_description
    if roles is not None:
        client.roles = roles
    r.kick.add(client.username)
    r.change(f"modifyClient | username={client.username}")


def client_json(state: State, client: Client) -> dict[str, Any]:
    entry: dict[str, Any] = {"username": client.username}
    if client.client_id is not None:
        entry["clientid"] = client.client_id
    if client.text_name is not None:
        entry["textname"] = client.text_name
    if client.text_description is not None:
        entry["textdescription"] = client.text_description
    if client.disabled:
        entry["disabled"] = True
    entry["roles"] = roles_json(client.roles)
    entry["groups"] = groups_json(client.groups)
    return entry


def cmd_getClient(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    client = r.client(command)
    r.log(f"getClient | username={client.username}")
    return {"client": client_json(r.state, client)}


def cmd_listClients(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    return _listing(r, command, "clients", r.state.clients, lambda c: client_json(r.state, c))


def cmd_addClientRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username, rolename = r.username(command), r.rolename(command)
    priority = _priority(command)
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    if rolename not in r.state.roles:
        raise Failed("Role not found")
    if rolename in client.roles:
        raise Failed("Internal error")  # Mosquitto's answer for a role the client has
    client.roles[rolename] = priority
    r.kick.add(username)
    r.change(f"addClientRole | username={username} | rolename={rolename} | priority={priority}")


def cmd_removeClientRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username, rolename = r.username(command), r.rolename(command)
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    if rolename not in r.state.roles:
        raise Failed("Role not found")
    client.roles.pop(rolename, None)
    r.kick.add(username)
    r.change(f"removeClientRole | username={username} | rolename={rolename}")


# Groups -----------------------------------------------------------------------------------

def cmd_createGroup(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    groupname = r.groupname(command)
    text_name = _optional_string(command, "textname", "Invalid/missing textname")
    text_description = _optional_string(command, "textdescription", "Invalid/missing textdescription")
    if groupname in r.state.groups:
        raise Failed("Group already exists")
    roles = r.role_list(command)
    r.state.groups[groupname] = Group(groupname, text_name, text_description, roles or {})
    r.change(f"createGroup | groupname={groupname}")


def cmd_deleteGroup(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    group = r.group(command)
    if group.name == r.state.anonymous_group:
        raise Failed("Deleting the anonymous group is forbidden")
    r.kick_group(group)
    r.state.delete_group(group)
    r.change(f"deleteGroup | groupname={group.name}")


def group_json(group: Group) -> dict[str, Any]:
    entry: dict[str, Any] = {"groupname": group.name}
    if group.text_name is not None:
        entry["textname"] = group.text_name
    if group.text_description is not None:
        entry["textdescription"] = group.text_description
    entry["clients"] = [{"username": username} for username in sorted(group.clients)]
    entry["roles"] = roles_json(group.roles)
    return entry


def cmd_getGroup(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    group = r.group(command)
    r.log(f"getGroup | groupname={group.name}")
    return {"group": group_json(group)}


def cmd_listGroups(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    return _listing(r, command, "groups", r.state.groups, group_json)


def cmd_modifyGroup(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    state = r.state
    group = r.group(command)
    text_name = _string_if_given(command, "textname")
    text_description = _string_if_given(command, "textdescription")
    roles = r.role_list(command)
    entries = get(command, "clients")
    if isinstance(entries, list):
        members: list[tuple[Client, int]] = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            username = get(entry, "username")
            if not isinstance(username, str):
                raise Failed("'clients' contains an object with an invalid 'username'")
            member = state.clients.get(username)
            if member is None:
                raise Failed("'clients' contains an object with a 'username' that does not exist")
            members.append((member, _priority(entry)))
        r.kick_group(group)  # the members before the change
        for username in list(group.clients):
            state.remove_group_client(group, state.clients[username])
        for member, priority in members:
            state.add_group_client(group, member, priority)
    if text_name is not None:
        group.text_name = text_name
    if text_description is not None:
        group.text_description = text_description
    if roles is not None:
        group.roles = roles
    r.kick_group(group)
    r.change(f"modifyGroup | groupname={group.name}")


def cmd_addGroupClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username, groupname = r.username(command), r.groupname(command)
    priority = _priority(command)
    r.kick.add(username)
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    group = r.state.groups.get(groupname)
    if group is None:
        raise Failed("Group not found")
    if not r.state.add_group_client(group, client, priority):
        raise Failed("Client is already in this group")
    r.change(f"addGroupClient | groupname={groupname} | username={username} | priority={priority}")


def cmd_removeGroupClient(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    username, groupname = r.username(command), r.groupname(command)
    r.kick.add(username)
    client = r.state.clients.get(username)
    if client is None:
        raise Failed("Client not found")
    group = r.state.groups.get(groupname)
    if group is None:
        raise Failed("Group not found")
    r.state.remove_group_client(group, client)
    r.change(f"removeGroupClient | groupname={groupname} | username={username}")


def cmd_addGroupRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    groupname, rolename = r.groupname(command), r.rolename(command)
    priority = _priority(command)
    group = r.state.groups.get(groupname)
    if group is None:
        raise Failed("Group not found")
    if rolename not in r.state.roles:
        raise Failed("Role not found")
    if rolename in group.roles:
        raise Failed("Group is already in this role")
    group.roles[rolename] = priority
    r.kick_group(group)
    r.change(f"addGroupRole | groupname={groupname} | rolename={rolename} | priority={priority}")


def cmd_removeGroupRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    groupname, rolename = r.groupname(command), r.rolename(command)
    group = r.state.groups.get(groupname)
    if group is None:
        raise Failed("Group not found")
    if rolename not in r.state.roles:
        raise Failed("Role not found")
    group.roles.pop(rolename, None)
    r.kick_group(group)
    r.change(f"removeGroupRole | groupname={groupname} | rolename={rolename}")


def cmd_setAnonymousGroup(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    group = r.group(command)
    r.state.anonymous_group = group.name
    r.kick_anonymous = True
    r.change(f"setAnonymousGroup | groupname={group.name}")


def cmd_getAnonymousGroup(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    r.log("getAnonymousGroup")
    return {"group": {"groupname": r.state.anonymous_group or ""}}


# Roles ------------------------------------------------------------------------------------

def cmd_createRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    rolename = r.rolename(command)
    text_name = _optional_string(command, "textname", "Invalid/missing textname")
    text_description = _optional_string(command, "textdescription", "Invalid/missing textdescription")
    if rolename in r.state.roles:
        raise Failed("Role already exists")
    role = Role(rolename, text_name, text_description)
    load_acls(role, get(command, "acls"))
    r.state.roles[rolename] = role
    r.change(f"createRole | rolename={rolename}")


def cmd_deleteRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    role = r.role(command)
    r.kick_role(role.name)
    r.state.delete_role(role)
    r.change(f"deleteRole | rolename={role.name}")


def cmd_getRole(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    role = r.role(command)
    r.log(f"getRole | rolename={role.name}")
    return {"role": role_json(role)}


def cmd_listRoles(r: Request, command: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
    return _listing(r, command, "roles", r.state.roles, role_json)


def cmd_modifyRole(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    role = r.role(command, "Role does not exist")
    text_name = _string_if_given(command, "textname")
    text_description = _string_if_given(command, "textdescription")
    if text_name is not None:
        role.text_name = text_name
    if text_description is not None:
        role.text_description = text_description
    acls = get(command, "acls")
    if isinstance(acls, list):
        replacement = Role(role.name)
        load_acls(replacement, acls)
        # Mosquitto disconnects no one here; the new ACLs apply from the next check anyway.
        role.acls = replacement.acls
    r.change(f"modifyRole | rolename={role.name}")


def _acl_kind(command: dict[str, Any]) -> str:
    name = get(command, "acltype")
    if not isinstance(name, str):
        raise Failed("Invalid/missing acltype")
    kind = acl_type(name)
    if kind is None:
        raise Failed("Unknown acltype")
    return kind


def _acl_topic(command: dict[str, Any]) -> str:
    topic = get(command, "topic")
    if not isinstance(topic, str):
        raise Failed("Invalid/missing topic")
    if not valid_utf8(topic):
        raise Failed("Topic not valid UTF-8")
    if not _valid_topic_filter(topic):
        raise Failed("Invalid ACL topic")
    return topic


def cmd_addRoleACL(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    role = r.role(command)
    kind = _acl_kind(command)
    topic = _acl_topic(command)
    if role.find_acl(kind, topic) is not None:
        raise Failed("ACL with this topic already exists")
    priority = json_int(get(command, "priority"))
    allow = get(command, "allow")
    role.add_acl(kind, Acl(topic, priority or 0, allow if isinstance(allow, bool) else False))
    r.kick_role(role.name)
    r.change(f"addRoleACL | rolename={role.name} | acltype={kind} | topic={topic}")


def cmd_removeRoleACL(r: Request, command: dict[str, Any]) -> None:  # noqa: N802
    role = r.role(command)
    kind = _acl_kind(command)
    topic = _acl_topic(command)
    acl = role.find_acl(kind, topic)
    if acl is None:
        raise Failed("ACL not found")
    role.acls[kind].remove(acl)
    r.kick_role(role.name)
    r.change(f"removeRoleACL | rolename={role.name} | acltype={kind} | topic={topic}")


HANDLERS: dict[str, Callable[[Request, dict[str, Any]], dict[str, Any] | None]] = {
    name.removeprefix("cmd_").lower(): handler
    for name, handler in list(globals().items()) if name.startswith("cmd_")
}

assert len(ACL_TYPES) == 6
