"""What a device installs, as files: one layout for `roost cert issue --out` and the API's zip.

    ca.pem      the platform root, the trust anchor for the broker's server certificate
    device.pem  the leaf followed by its issuing CA, the chain a device presents
    device.key  the private key, only when it was generated here (never stored)
    chain.pem   the issuing CA alone (zip only), for tools that want leaf and chain apart
"""

from __future__ import annotations

import io
import zipfile

from .issuance import IssuedCertificate

KEY_FILE = "device.key"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: the archive's bytes depend on its content alone


def device_files(issued: IssuedCertificate) -> dict[str, bytes]:
    """ca.pem, device.pem and (for a generated key) device.key."""
    files = {
        "ca.pem": issued.root_pem.encode(),
        "device.pem": (issued.certificate_pem + issued.chain_pem).encode(),
    }
    if issued.private_key_pem:
        files[KEY_FILE] = issued.private_key_pem.encode()
    return files


def add_to_zip(archive: zipfile.ZipFile, issued: IssuedCertificate, folder: str = "") -> None:
    """Write the device's files into `archive`, under `folder/` when given."""
    files = {**device_files(issued), "chain.pem": issued.chain_pem.encode()}
    for name, data in files.items():
        info = zipfile.ZipInfo(f"{folder.rstrip('/')}/{name}" if folder else name, date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        # unzip restores these modes: the key is readable by its owner only.
        info.external_attr = (0o600 if name == KEY_FILE else 0o644) << 16
        archive.writestr(info, data)


def zip_bundle(issued: IssuedCertificate) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        add_to_zip(archive, issued)
    return buffer.getvalue()
