"""Certificate signing requests: bounded parsing, proof of possession, and the key policy.

Only the public key of a CSR is used. Every subject field and extension it asks for is
ignored: the CA decides the subject, the SAN and the key usages (see issuance.py).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from .errors import PkiError, bad_request, too_large

# A P-384 CSR is about 500 bytes of PEM and an RSA-4096 one about 1.7 KB; 16 KiB leaves room
# for long subjects while refusing anything that could be used to make the parser work hard.
MAX_CSR_BYTES = 16 * 1024
PEM_BEGIN = b"-----BEGIN "

ACCEPTED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ACCEPTED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_KEY_NAMES = ((dsa.DSAPublicKey, "DSA keys"), (ed25519.Ed25519PublicKey, "Ed25519 keys"),
              (ed448.Ed448PublicKey, "Ed448 keys"))
KEY_POLICY = "ECDSA P-256 or P-384, or RSA 2048 to 8192 bits, signed with SHA-256 or stronger"


def check_public_key(key: object) -> CertificateIssuerPublicKeyTypes:
    """Refuse keys outside the policy with a message that names the reason."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ACCEPTED_CURVES:
            raise bad_request(f"Elliptic curve {key.curve.name} is not accepted; use {KEY_POLICY}.",
                              code="weak_key")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise bad_request(f"RSA keys of {key.key_size} bits are too short; use {KEY_POLICY}.", code="weak_key")
        if key.key_size > MAX_RSA_BITS:
            raise bad_request(f"RSA keys of {key.key_size} bits are not accepted; use {KEY_POLICY}.",
                              code="weak_key")
        return key
    kind = next((name for cls, name in _KEY_NAMES if isinstance(key, cls)), "Keys of this type")
    raise bad_request(f"{kind} are not accepted; use {KEY_POLICY}.", code="unsupported_key")


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse one CSR (PEM or DER), verify its self-signature and apply the key policy."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    # Size and shape are checked before any parsing so that large or crafted input costs nothing.
    if len(raw) > MAX_CSR_BYTES:
        raise too_large(f"The CSR is {len(raw)} bytes; at most {MAX_CSR_BYTES} are accepted.", code="csr_too_large")
    if not raw.strip():
        raise bad_request("The CSR is empty.", code="invalid_csr")
    blocks = raw.count(PEM_BEGIN)
    try:
        if blocks > 1:
            raise bad_request("Send exactly one CSR (the input holds several PEM blocks).", code="invalid_csr")
        if blocks == 1:
            if b"-----BEGIN CERTIFICATE REQUEST-----" not in raw and b"-----BEGIN NEW CERTIFICATE REQUEST-----" not in raw:
                raise bad_request("The PEM block is not a CERTIFICATE REQUEST.", code="invalid_csr")
            csr = x509.load_pem_x509_csr(raw.replace(b"NEW CERTIFICATE REQUEST", b"CERTIFICATE REQUEST"))
        else:
            csr = x509.load_der_x509_csr(raw)
    except PkiError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise bad_request("The CSR could not be parsed (expected one PKCS#10 request in PEM or DER).",
                          code="invalid_csr") from None
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise bad_request(f"The CSR's key type is not supported; use {KEY_POLICY}.", code="unsupported_key") from None
    check_public_key(public_key)
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise bad_request(f"The CSR's signature algorithm is not supported; use {KEY_POLICY}.",
                          code="weak_signature") from None
    if not isinstance(algorithm, ACCEPTED_HASHES):
        name = algorithm.name.upper() if algorithm is not None else "an unknown hash"
        raise bad_request(f"The CSR is signed with {name}; use SHA-256 or stronger.", code="weak_signature")
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise bad_request("The CSR's signature does not match its public key (no proof of possession of the key).",
                          code="bad_signature")
    return csr
