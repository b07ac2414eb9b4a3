"""The OCSP responder (RFC 6960): good / revoked / unknown, signed by the CA that issued the certificate.

Each CA answers for its own certificates, retired issuing CAs included, so a rotation does not
leave earlier certificates without an answer.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from django.utils import timezone

from . import keystore
from .errors import PkiError
from .models import Certificate, CertificateAuthority, CertificateStatus, RevocationReason
from .revocation import reason_flag
from .x509util import load_pem, serial_hex, signature_hash_for

logger = logging.getLogger(__name__)

# Requests are a few hundred bytes; anything much larger is not an OCSP request.
MAX_REQUEST_BYTES = 8 * 1024
RESPONSE_LIFETIME = timedelta(hours=1)


def _subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """The contents of the subjectPublicKey BIT STRING, which RFC 6960's issuerKeyHash covers."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise ValueError(f"unexpected CA key type {type(key).__name__}")


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _matches(cert: x509.Certificate, request: ocsp.OCSPRequest) -> bool:
    algorithm = request.hash_algorithm
    return (_digest(algorithm, cert.subject.public_bytes()) == request.issuer_name_hash
            and _digest(algorithm, _subject_public_key_bits(cert)) == request.issuer_key_hash)


def _find_ca(request: ocsp.OCSPRequest) -> CertificateAuthority | None:
    if isinstance(request.hash_algorithm, hashes.SHA1):
        # Our subject key identifiers are the SHA-1 of the key bits (RFC 5280 4.2.1.2 method 1),
        # which is exactly a SHA-1 issuerKeyHash: one indexed lookup.
        candidates = list(CertificateAuthority.objects.filter(key_id=request.issuer_key_hash.hex()))
    else:
        candidates = list(CertificateAuthority.objects.all())
    for ca in candidates:
        if _matches(load_pem(ca.certificate_pem), request):
            return ca
    return None


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def respond(request_der: bytes) -> bytes:
    """A DER OCSP response to a DER OCSP request (one certificate per request)."""
    if len(request_der) > MAX_REQUEST_BYTES:
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        nonce = None
        for ext in request.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                nonce = ext.value.nonce
    except (ValueError, TypeError, NotImplementedError):
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    if not isinstance(request.hash_algorithm, (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)):
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    ca = _find_ca(request)
    if ca is None:
        # Not one of our CAs: RFC 6960 2.3 "unauthorized" rather than a signed "unknown".
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    ca_cert = load_pem(ca.certificate_pem)
    try:
        key = keystore.load_ca_key(ca.key_file)
    except PkiError:
        logger.exception("OCSP: the key of CA %s cannot be loaded", ca.pk)
        return _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
    now = timezone.now().replace(microsecond=0)
    record = Certificate.objects.filter(issuer=ca, serial=serial_hex(request.serial_number)).first()
    builder = ocsp.OCSPResponseBuilder()
    if record is None:
        builder = builder.add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.UNKNOWN, this_update=now, next_update=now + RESPONSE_LIFETIME,
            revocation_time=None, revocation_reason=None,
        )
    else:
        revoked = record.status == CertificateStatus.REVOKED
        reason = None
        if revoked and record.revocation_reason and record.revocation_reason != RevocationReason.UNSPECIFIED:
            reason = reason_flag(record.revocation_reason)
        builder = builder.add_response(
            cert=load_pem(record.certificate_pem), issuer=ca_cert, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now, next_update=now + RESPONSE_LIFETIME,
            revocation_time=(record.revoked_at or now) if revoked else None,
            revocation_reason=reason,
        )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, ca_cert)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(key, signature_hash_for(key))
    return response.public_bytes(serialization.Encoding.DER)
