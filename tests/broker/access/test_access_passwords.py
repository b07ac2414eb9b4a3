"""Password files written by Debian's mosquitto_passwd, read by broker.access.passwords."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from broker.access.passwords import (
    AccessFileError,
    IdentityAuthenticator,
    PasswordAuthenticator,
    PasswordFile,
)
from broker.engine.interfaces import ConnectionFacts, Principal
from tests.broker.net.tls_certs import make_pki


def mosquitto_passwd(path: Path, user: str, password: str, *options: str) -> None:
    subprocess.run(["mosquitto_passwd", *options, "-b", str(path), user, password], check=True,
                   capture_output=True)


def facts(username: str | None, password: bytes | None, client_id: str = "c1",
          certificates: tuple[bytes, ...] = ()) -> ConnectionFacts:
    return ConnectionFacts(client_id=client_id, username=username, password=password, protocol_level=5,
                           peer_certificates=certificates, listener="test", remote_address=None)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwords"
    mosquitto_passwd(path, "alice", "s3cret", "-c")
    mosquitto_passwd(path, "bob", "pass word with spaces")
    mosquitto_passwd(path, "carol", "legacy", "-H", "sha512")  # the $6$ format of Mosquitto 1.6
    return path


def test_hashes_from_mosquitto_passwd_verify_the_right_password_only(password_file: Path) -> None:
    assert "$6$" in password_file.read_text().splitlines()[2]
    passwords = PasswordFile(password_file)
    assert passwords.verify("alice", b"s3cret")
    assert passwords.verify("bob", b"pass word with spaces")
    assert passwords.verify("carol", b"legacy")
    assert not passwords.verify("alice", b"S3cret")
    assert not passwords.verify("carol", b"legacy ")
    assert not passwords.verify("mallory", b"s3cret")
    assert not passwords.verify("alice", None)


def test_the_authenticator_answers_with_the_right_reason_codes(password_file: Path) -> None:
    closed = PasswordAuthenticator(PasswordFile(password_file), anonymous=False)
    principal = closed.authenticate(facts("alice", b"s3cret", "alice-laptop"))
    assert isinstance(principal, Principal)
    assert principal.name == "alice"
    assert principal.attributes == {"username": "alice", "client_id": "alice-laptop"}
    assert closed.authenticate(facts("alice", b"wrong")) == 0x86
    assert closed.authenticate(facts("nobody", b"s3cret")) == 0x86
    assert closed.authenticate(facts(None, None)) == 0x87
    open_ = PasswordAuthenticator(PasswordFile(password_file), anonymous=True)
    anonymous = open_.authenticate(facts(None, None, "anon-1"))
    assert isinstance(anonymous, Principal) and anonymous.attributes["username"] is None
    assert open_.authenticate(facts("alice", b"wrong")) == 0x86  # a wrong password is never anonymous


def test_a_plain_text_or_broken_line_is_refused_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    path.write_text("# users\nalice:$7$101$c2FsdA==$ZGlnZXN0\nbob:hunter2\n")
    with pytest.raises(AccessFileError, match=r"passwords:3: .*mosquitto_passwd -U"):
        PasswordFile(path)
    path.write_text("no colon here\n")
    with pytest.raises(AccessFileError, match=r"passwords:1: expected username:hash"):
        PasswordFile(path)
    with pytest.raises(AccessFileError, match="No such file"):
        PasswordFile(tmp_path / "missing")


def test_reloading_picks_up_changed_passwords(password_file: Path) -> None:
    passwords = PasswordFile(password_file)
    mosquitto_passwd(password_file, "alice", "rotated")
    assert passwords.verify("alice", b"s3cret")
    passwords.load()
    assert passwords.verify("alice", b"rotated") and not passwords.verify("alice", b"s3cret")


def test_without_a_password_file_the_certificate_names_the_user(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    der = x509.load_pem_x509_certificate(pki.client_cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    identities = IdentityAuthenticator(anonymous=False)
    principal = identities.authenticate(facts("claimed", None, "dev", certificates=(der,)))
    assert isinstance(principal, Principal)
    assert principal.attributes == {"username": "device-1", "client_id": "dev"}  # the CN, not the claim
    assert identities.authenticate(facts("claimed", None)) == 0x87
    anonymous = IdentityAuthenticator(anonymous=True).authenticate(facts("claimed", None))
    assert isinstance(anonymous, Principal) and anonymous.attributes["username"] == "claimed"
