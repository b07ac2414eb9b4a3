"""Creating a device with its certificate in one step, and the one-time download of its key."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from devices.models import AuditEvent, Device, Membership, Role
from devices.services import create_device, create_group
from pki.models import Certificate

pytestmark = pytest.mark.django_db

NEW = "/portal/t/acme/devices/-/new/"


@pytest.fixture(autouse=True)
def _broker_address(settings: Any) -> None:
    settings.ROOST_BROKER_HOSTNAMES = ["mqtt.example.net", "127.0.0.1"]
    settings.ROOST_BROKER_PORT = 18883


@pytest.fixture
def operator(acme: Any, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("olga", password="olga-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.OPERATOR)
    return user


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _csr(key: Any = None, name: str = "whatever") -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)


def _public_der(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _create(client: Client, **fields: Any) -> Any:
    data = {"name": "sensor-9", "display_name": "", "attributes": "", "key_source": "generate", **fields}
    return client.post(NEW, data)


def _nothing_created() -> None:
    assert not Device.objects.filter(name="sensor-9").exists()
    assert not Certificate.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["device.create", "certificate.issue"]).exists()


def test_the_create_form_has_labelled_fields_and_takes_files(operator: Any) -> None:
    body = _client(operator).get(NEW).content.decode()
    assert 'enctype="multipart/form-data"' in body
    for name in ("name", "display_name", "group", "attributes", "csr_file", "csr_text", "days"):
        assert f'<label for="id_{name}">' in body, name
    assert 'value="generate"' in body and 'value="csr"' in body


def test_creating_a_device_with_a_generated_key_registers_it_and_issues_its_certificate(
        operator: Any, acme: Any) -> None:
    north = create_group(acme, "north")
    response = _create(_client(operator), display_name="Boiler", group=north.pk, attributes="site=north\nfloor = 2")
    assert response.status_code == 302
    assert re.fullmatch(r"/portal/t/acme/devices/sensor-9/issued/[\w-]+/", response["Location"])
    device = Device.objects.get(tenant=acme, name="sensor-9")
    assert (device.display_name, device.group, device.attributes) == ("Boiler", north, {"site": "north", "floor": "2"})
    cert = Certificate.objects.get(device=device)
    assert cert.key_generated_by_server and cert.issued_by == "olga"
    assert AuditEvent.objects.filter(action="device.create", actor_user=operator).exists()
    assert AuditEvent.objects.filter(action="certificate.issue", actor_user=operator).exists()


def test_the_result_page_shows_the_passphrase_and_the_exact_mosquitto_line(operator: Any) -> None:
    client = _client(operator)
    page = client.get(_create(client)["Location"])
    body = page.content.decode()
    assert page.context["bundle"].passphrase in body
    assert ("mosquitto_pub --cafile ca.pem --cert device.pem --key device.key -h mqtt.example.net -p 18883 "
            "-i sensor-9 -t devices/sensor-9/hello -m hi") in body
    assert 'id="download-zip"' in body and 'id="download-p12"' in body


def test_the_zip_holds_the_root_the_chain_and_the_key_and_downloads_once(operator: Any, acme: Any) -> None:
    client = _client(operator)
    issued = _create(client)["Location"]
    response = client.post(issued + "zip/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="sensor-9.zip"'
    assert response["Cache-Control"] == "no-store"
    files = zipfile.ZipFile(io.BytesIO(response.content))
    assert {"sensor-9/ca.pem", "sensor-9/device.pem", "sensor-9/device.key"} <= set(files.namelist())
    assert (files.getinfo("sensor-9/device.key").external_attr >> 16) & 0o777 == 0o600
    chain = x509.load_pem_x509_certificates(files.read("sensor-9/device.pem"))
    key = serialization.load_pem_private_key(files.read("sensor-9/device.key"), None)
    cert = Certificate.objects.get(device__name="sensor-9")
    assert len(chain) == 2 and format(chain[0].serial_number, "x") == cert.serial
    assert _public_der(chain[0].public_key()) == _public_der(key.public_key())
    root = x509.load_pem_x509_certificate(files.read("sensor-9/ca.pem"))
    chain[1].verify_directly_issued_by(root)

    again = client.post(issued + "zip/", follow=True)
    assert again.redirect_chain[-1][0] == issued
    assert "This download is gone" in again.content.decode()
    assert client.post(issued + "p12/").status_code == 302  # one download of either kind, then none


def test_the_p12_opens_with_the_passphrase_shown_and_downloads_once(operator: Any) -> None:
    client = _client(operator)
    issued = _create(client)["Location"]
    passphrase = client.get(issued).context["bundle"].passphrase
    response = client.post(issued + "p12/")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-pkcs12"
    key, cert, extra = pkcs12.load_key_and_certificates(response.content, passphrase.encode())
    assert cert is not None and cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sensor-9"
    assert _public_der(cert.public_key()) == _public_der(key.public_key()) and len(extra) == 1
    assert client.post(issued + "p12/").status_code == 302
    assert client.post(issued + "zip/").status_code == 302
    assert client.get(issued).context["bundle"] is None


def test_nobody_else_can_take_the_download(operator: Any, alice: Any, admin_client: Client) -> None:
    issued = _create(_client(operator))["Location"]
    assert _client(alice).post(issued + "zip/").status_code == 302
    assert admin_client.post(issued + "zip/").status_code == 302
    assert _client(operator).post(issued + "zip/").status_code == 200  # still there for its owner


def test_a_download_is_a_post_never_a_get(operator: Any) -> None:
    client = _client(operator)
    issued = _create(client)["Location"]
    assert client.get(issued + "zip/").status_code == 405
    assert client.post(issued + "zip/").status_code == 200


def test_an_uploaded_csr_gets_its_key_certified_and_no_key_is_offered(operator: Any) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    client = _client(operator)
    response = client.post(NEW, {"name": "sensor-9", "key_source": "csr",
                                 "csr_file": SimpleUploadedFile("req.csr", _csr(key))})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert 'id="download-p12"' not in page.content.decode()
    files = zipfile.ZipFile(io.BytesIO(client.post(response["Location"] + "zip/").content))
    assert "sensor-9/device.key" not in files.namelist()
    leaf = x509.load_pem_x509_certificates(files.read("sensor-9/device.pem"))[0]
    assert _public_der(leaf.public_key()) == _public_der(key.public_key())
    assert not Certificate.objects.get(device__name="sensor-9").key_generated_by_server


def test_a_pasted_csr_works_too(operator: Any) -> None:
    response = _create(_client(operator), key_source="csr", csr_text=_csr().decode())
    assert response.status_code == 302
    assert Certificate.objects.filter(device__name="sensor-9").count() == 1


@pytest.mark.parametrize(("name", "message"), [
    ("", "This field is required."),
    ("bad/name", "Invalid device name"),
    ("-leading-dash", "Invalid device name"),
    ("x" * 129, "Ensure this value has at most 128 characters"),
])
def test_a_bad_device_name_is_refused_at_the_field_and_nothing_is_created(
        operator: Any, name: str, message: str) -> None:
    response = _create(_client(operator), name=name)
    assert response.status_code == 200
    assert message in str(response.context["form"].errors["name"])
    _nothing_created()


def test_a_duplicate_name_is_refused_at_the_field(operator: Any, acme: Any) -> None:
    create_device(acme, "sensor-9")
    response = _create(_client(operator))
    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].errors["name"])
    assert Device.objects.filter(name="sensor-9").count() == 1 and not Certificate.objects.exists()


def test_the_same_name_in_another_tenant_is_no_duplicate(operator: Any, globex: Any) -> None:
    create_device(globex, "sensor-9")
    assert _create(_client(operator)).status_code == 302


@pytest.mark.parametrize(("csr", "field", "message"), [
    ("not a csr at all", "csr_text", "could not be parsed"),
    ("", "csr_text", "Upload or paste the certificate signing request."),
])
def test_a_bad_pasted_csr_is_refused_at_the_field_and_nothing_is_created(
        operator: Any, csr: str, field: str, message: str) -> None:
    response = _create(_client(operator), key_source="csr", csr_text=csr)
    assert response.status_code == 200
    assert message in str(response.context["form"].errors[field])
    _nothing_created()


def test_a_csr_with_a_weak_key_is_refused_at_the_file_field(operator: Any) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    response = _client(operator).post(NEW, {"name": "sensor-9", "key_source": "csr",
                                            "csr_file": SimpleUploadedFile("weak.csr", _csr(weak))})
    assert response.status_code == 200
    assert "too short" in str(response.context["form"].errors["csr_file"])
    _nothing_created()


def test_a_key_already_certified_for_another_device_creates_nothing(operator: Any, acme: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client = _client(operator)
    assert _create(client, name="first", key_source="csr", csr_text=_csr(key).decode()).status_code == 302
    response = _create(client, key_source="csr", csr_text=_csr(key).decode())
    assert response.status_code == 200
    assert "already certified for another device" in str(response.context["form"].errors["csr_text"])
    assert not Device.objects.filter(name="sensor-9").exists()  # the device went back with the refusal


@pytest.mark.parametrize(("text", "message"), [
    ("site", "is not key=value"),
    ("=north", "is not key=value"),
    ("a=1\na=2", "appears twice"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "is not key=value"),
])
def test_bad_attributes_are_refused_at_the_field(operator: Any, text: str, message: str) -> None:
    response = _create(_client(operator), attributes=text)
    assert response.status_code == 200
    assert message in str(response.context["form"].errors["attributes"])
    _nothing_created()


def test_attributes_may_be_a_json_object(operator: Any) -> None:
    _create(_client(operator), attributes='{"floor": 2, "tags": ["a"]}')
    assert Device.objects.get(name="sensor-9").attributes == {"floor": 2, "tags": ["a"]}


def test_a_group_of_another_tenant_cannot_be_chosen(operator: Any, globex: Any) -> None:
    foreign = create_group(globex, "theirs")
    response = _create(_client(operator), group=foreign.pk)
    assert response.status_code == 200 and "group" in response.context["form"].errors
    _nothing_created()


def test_an_out_of_range_validity_is_refused(operator: Any) -> None:
    response = _create(_client(operator), days="0")
    assert response.status_code == 200 and "days" in response.context["form"].errors
    _nothing_created()
