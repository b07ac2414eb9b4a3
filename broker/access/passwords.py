"""Mosquitto password files (`mosquitto_passwd`) and the authenticator that checks them.

Each line is `username:HASH`, with HASH either `$7$ITERATIONS$SALT$DIGEST` (PBKDF2 with
HMAC-SHA512, the default since Mosquitto 2.0) or `$6$SALT$DIGEST` (one round of SHA-512 over
password then salt, Mosquitto 1.6 and older); SALT and DIGEST are base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from broker.config_files import ConfigFileError, read_text, significant_lines
from broker.engine.interfaces import (
    ConnectionFacts,
    Principal,
    certificate_common_name,
    format_client_text,
)
from broker.mqtt.reason_codes import ReasonCode

logger = logging.getLogger("broker")


class AccessFileError(ConfigFileError):
    """A password or ACL file that cannot be used, with the file and line at fault."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    iterations: int  # 0: the single SHA-512 round of the `$6$` format
    salt: bytes
    digest: bytes

    def verify(self, password: bytes) -> bool:
        if self.iterations:
            computed = hashlib.pbkdf2_hmac("sha512", password, self.salt, self.iterations,
                                           len(self.digest))
        else:
            computed = hashlib.sha512(password + self.salt).digest()
        return hmac.compare_digest(computed, self.digest)


def parse_hash(text: str) -> PasswordHash:
    parts = text.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations = int(parts[2])
            if iterations < 1:
                raise ValueError("iterations")
            return PasswordHash(iterations, base64.b64decode(parts[3], validate=True),
                                base64.b64decode(parts[4], validate=True))
        if len(parts) == 4 and parts[1] == "6":
            return PasswordHash(0, base64.b64decode(parts[2], validate=True),
                                base64.b64decode(parts[3], validate=True))
    except (ValueError, binascii.Error):
        pass
    raise ValueError("not a $7$ (PBKDF2-SHA512) or $6$ (SHA-512) hash from mosquitto_passwd")


class PasswordFile:
    """Users and their password hashes, read from a file; `load` again to reload it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.users: dict[str, PasswordHash] = {}
        self.load()

    def load(self) -> None:
        users: dict[str, PasswordHash] = {}
        for number, line in significant_lines(read_text(self.path, AccessFileError)):
            username, colon, hashed = line.partition(":")
            if not colon or not username:
                raise AccessFileError(f"{self.path}:{number}: expected username:hash")
            try:
                users[username] = parse_hash(hashed)
            except ValueError as error:
                raise AccessFileError(f"{self.path}:{number}: {error} (plain-text passwords "
                                      "are not accepted; hash them with mosquitto_passwd -U)") from None
        self.users = users

    def verify(self, username: str, password: bytes | None) -> bool:
        hashed = self.users.get(username)
        if hashed is None or password is None:
            return False
        return hashed.verify(password)


class PasswordAuthenticator:
    """Username and password from the file; clients without a username only if anonymous
    access is on. Like Mosquitto, a client certificate (when the listener asks for one) is
    checked by TLS and does not replace the password."""

    __slots__ = ("passwords", "anonymous")

    def __init__(self, passwords: PasswordFile, anonymous: bool) -> None:
        self.passwords = passwords
        self.anonymous = anonymous

    def authenticate(self, facts: ConnectionFacts) -> Principal | int:
        username = facts.username
        if username is None:
            if not self.anonymous:
                return refuse(facts, ReasonCode.NOT_AUTHORIZED, "no username")
            return identity(None, facts.client_id)
        if not self.passwords.verify(username, facts.password):
            return refuse(facts, ReasonCode.BAD_USER_NAME_OR_PASSWORD, f"bad username or password (user {username!r})")
        return identity(username, facts.client_id)


class IdentityAuthenticator:
    """Without a password file: the certificate's common name is the username when the
    client presented one (Mosquitto's `use_identity_as_username`), else the username the
    client sent, taken on trust; clients with neither are refused unless anonymous is on."""

    __slots__ = ("anonymous",)

    def __init__(self, anonymous: bool) -> None:
        self.anonymous = anonymous

    def authenticate(self, facts: ConnectionFacts) -> Principal | int:
        if facts.peer_certificates:
            return identity(certificate_common_name(facts.peer_certificates[0]), facts.client_id)
        if not self.anonymous:
            return refuse(facts, ReasonCode.NOT_AUTHORIZED, "no client certificate")
        return identity(facts.username, facts.client_id)


def refuse(facts: ConnectionFacts, code: int, why: str) -> int:
    host = facts.remote_address[0] if facts.remote_address else "?"
    logger.info("client %s from %s refused: %s", format_client_text(facts.client_id), host, why)
    return code


def identity(username: str | None, client_id: str) -> Principal:
    """The principal the ACL file's `user` sections and `%u` / `%c` patterns work on."""
    return Principal(name=username if username is not None else client_id,
                     attributes={"username": username, "client_id": client_id})
