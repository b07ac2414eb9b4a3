"""Bad CSRs are refused with a 400 (or 413) that names the reason; nothing else ever escapes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from pki.csr import MAX_CSR_BYTES, load_csr
from pki.errors import PkiError

from .helpers import csr_pem, csr_with_swapped_key, p256, sha1_csr_pem


def _refusal(data: Any) -> PkiError:
    with pytest.raises(PkiError) as refused:
        load_csr(data)
    return refused.value


def test_a_well_formed_p256_csr_is_accepted_in_pem_and_der() -> None:
    pem = csr_pem()
    csr = load_csr(pem)
    from cryptography.hazmat.primitives import serialization

    assert load_csr(csr.public_bytes(serialization.Encoding.DER)).public_key() == csr.public_key()


@pytest.mark.parametrize("key", [
    pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p384"),
    pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa2048"),
])
def test_p384_and_rsa_2048_keys_are_accepted(key: Any) -> None:
    assert load_csr(csr_pem(key(), algorithm=hashes.SHA384())) is not None


def test_a_csr_whose_signature_does_not_match_its_key_is_refused_as_no_proof_of_possession() -> None:
    refusal = _refusal(csr_with_swapped_key())
    assert refusal.status == 400 and refusal.code == "bad_signature"
    assert "signature does not match" in refusal.message


@pytest.mark.parametrize(("make_key", "expected"), [
    pytest.param(lambda: rsa.generate_private_key(65537, 1024), "RSA keys of 1024 bits are too short", id="rsa1024"),
    pytest.param(lambda: dsa.generate_private_key(2048), "DSA keys are not accepted", id="dsa"),
    pytest.param(lambda: ec.generate_private_key(ec.SECP192R1()), "secp192r1 is not accepted", id="p192"),
    pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1 is not accepted", id="secp256k1"),
])
def test_weak_or_foreign_key_types_are_refused_naming_the_reason(make_key: Any, expected: str) -> None:
    refusal = _refusal(csr_pem(make_key()))
    assert refusal.status == 400
    assert expected in refusal.message


def test_an_ed25519_csr_is_refused_naming_the_key_type() -> None:
    refusal = _refusal(csr_pem(ed25519.Ed25519PrivateKey.generate(), algorithm=None))
    assert refusal.status == 400 and "Ed25519 keys are not accepted" in refusal.message


def test_a_sha1_signed_csr_is_refused(tmp_path: Path) -> None:
    refusal = _refusal(sha1_csr_pem(tmp_path))
    assert refusal.status == 400 and refusal.code == "weak_signature"
    assert "SHA1" in refusal.message and "SHA-256 or stronger" in refusal.message


def test_a_one_megabyte_csr_is_refused_as_too_large_before_parsing() -> None:
    payload = csr_pem() + "A" * (1024 * 1024)
    started = time.monotonic()
    refusal = _refusal(payload)
    assert refusal.status == 413 and str(MAX_CSR_BYTES) in refusal.message
    assert time.monotonic() - started < 0.5


def test_several_pem_blocks_are_refused() -> None:
    refusal = _refusal(csr_pem() + csr_pem())
    assert refusal.status == 400 and "exactly one CSR" in refusal.message


@pytest.mark.parametrize("data", ["", "hello", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                  b"\x30\x82\xff\xff", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_garbage_is_refused_as_an_unparseable_csr(data: Any) -> None:
    assert _refusal(data).status == 400


def test_the_key_policy_keeps_p256() -> None:
    assert load_csr(csr_pem(p256())).public_key().curve.name == "secp256r1"
