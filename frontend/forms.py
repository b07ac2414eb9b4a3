"""Portal forms. They check the shape of what a person typed; the rules live in the services."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from acl import forms as acl_forms
from acl.models import AclRule, Action, Effect, RuleRole, SubjectKind
from devices.apikeys import MAX_EXPIRY_DAYS
from devices.models import ApiKeyRole, Device, DeviceGroup, Role, Tenant
from devices.services import find_user
from devices.validators import DEVICE_NAME_RULE, validate_device_name
from pki.csr import MAX_CSR_BYTES, load_csr
from pki.enrollment import parse_duration
from pki.errors import PkiError
from pki.issuance import MAX_DAYS
from pki.models import RevocationReason

from . import throttle

ATTRIBUTES_HELP = "One key=value per line (or a JSON object), e.g. site=north."


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, refusing further tries after too many failures per user and address."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed sign-in attempts for this user from your address. "
                     "Wait a minute, then try again.",
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = throttle.client_address(self.request)
        if throttle.is_throttled(username, address):
            raise ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            return super().clean()
        except ValidationError:
            throttle.note_failure(username, address)
            raise


def parse_attributes(text: str) -> dict[str, Any]:
    """`key=value` lines, or a JSON object, into the device's attributes."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"This is not valid JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise ValidationError("Attributes must be a JSON object.")
        return value
    attributes: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"Line {number} ({line[:40]!r}) is not key=value.")
        if len(key) > 64 or any(ord(c) < 32 for c in key):
            raise ValidationError(f"Line {number}: a key has at most 64 printable characters.")
        if key in attributes:
            raise ValidationError(f"Line {number}: the key {key!r} appears twice.")
        attributes[key] = value.strip()
    return attributes


def format_attributes(attributes: dict[str, Any]) -> str:
    """The text parse_attributes() reads back into the same attributes."""
    if all(isinstance(v, str) and "\n" not in v for v in attributes.values()):
        return "\n".join(f"{k}={v}" for k, v in attributes.items())
    return json.dumps(attributes, indent=2, ensure_ascii=False)


class AttributesField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", ATTRIBUTES_HELP)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return format_attributes(value) if isinstance(value, dict) else value

    def clean(self, value: Any) -> dict[str, Any]:
        return parse_attributes(super().clean(value) or "")


class GroupField(forms.ModelChoiceField[DeviceGroup]):
    def __init__(self, tenant: Tenant, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("empty_label", "(no group)")
        super().__init__(queryset=DeviceGroup.objects.filter(tenant=tenant).order_by("name"), **kwargs)

    def label_from_instance(self, obj: DeviceGroup) -> str:
        return obj.name


class CertificateRequestForm(forms.Form):
    """How the key of a new certificate comes to be: generated here, or from the device's CSR."""

    GENERATE, CSR = "generate", "csr"
    key_source = forms.ChoiceField(
        label="Private key", widget=forms.RadioSelect, initial=GENERATE,
        choices=[(GENERATE, "Generate a key here (ECDSA P-256), downloaded once with the certificate"),
                 (CSR, "Sign my certificate signing request (the key never leaves the device)")],
    )
    csr_file = forms.FileField(label="CSR file (PEM or DER)", required=False)
    csr_text = forms.CharField(
        label="…or paste the CSR (PEM)", required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false",
                                     "placeholder": "-----BEGIN CERTIFICATE REQUEST-----"}),
    )
    days = forms.IntegerField(label="Validity in days", required=False, min_value=1, max_value=MAX_DAYS,
                              help_text="Empty: the platform's default.")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("key_source") != self.CSR:
            data["csr"] = None
            return data
        upload = data.get("csr_file")
        if upload is not None:
            raw = upload.read(MAX_CSR_BYTES + 1)
            where = "csr_file"
        else:
            raw = (data.get("csr_text") or "").encode()
            where = "csr_text"
        if not raw.strip():
            self.add_error("csr_text", "Upload or paste the certificate signing request.")
            return data
        try:
            load_csr(raw)  # checked here so that a bad CSR is reported before anything is created
        except PkiError as exc:
            self.add_error(where, exc.message)
            return data
        data["csr"] = raw
        return data


class DeviceCreateForm(CertificateRequestForm):
    field_order = ["name", "display_name", "group", "attributes", "key_source", "csr_file", "csr_text", "days"]

    name = forms.CharField(max_length=128, validators=[validate_device_name], help_text=(
        f"The MQTT client id: {DEVICE_NAME_RULE}."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}))
    display_name = forms.CharField(max_length=200, required=False)
    attributes = AttributesField()

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"] = GroupField(tenant)
        self.order_fields(self.field_order)


class DeviceEditForm(forms.Form):
    display_name = forms.CharField(max_length=200, required=False)
    attributes = AttributesField()
    enabled = forms.BooleanField(required=False, help_text="A disabled device is disconnected and refused.")

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"] = GroupField(tenant)
        self.order_fields(["display_name", "group", "attributes", "enabled"])


class RevokeForm(forms.Form):
    reason = forms.ChoiceField(choices=RevocationReason.choices, initial=RevocationReason.UNSPECIFIED)


class BulkDeviceForm(forms.Form):
    ENABLE, DISABLE, DELETE = "enable", "disable", "delete"
    ACTIONS = [(ENABLE, "Enable"), (DISABLE, "Disable"), (DELETE, "Delete")]
    action = forms.ChoiceField(choices=ACTIONS)
    pk = forms.TypedMultipleChoiceField(coerce=int, label="Devices", error_messages={
        "required": "Select at least one device."})
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, device_ids: list[int], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.TypedMultipleChoiceField, self.fields["pk"]).choices = [(pk, pk) for pk in device_ids]


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ValidationError at the fields it names (the others above the form)."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What uses it, e.g. factory-line-2.")
    role = forms.ChoiceField(choices=ApiKeyRole.choices, initial=ApiKeyRole.VIEWER)
    expires_days = forms.IntegerField(label="Expires after (days)", required=False, min_value=1,
                                      max_value=MAX_EXPIRY_DAYS, help_text="Empty: never.")


class MemberInviteForm(forms.Form):
    user = forms.CharField(label="User name or e-mail", max_length=254,
                           help_text="An existing account; platform staff create accounts.",
                           widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def clean_user(self) -> Any:
        try:
            return find_user(self.cleaned_data["user"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["user"]) from None


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


# Access rules -------------------------------------------------------------------------------------

class RuleForm(forms.Form):
    """A rule's fields as a person types them; AclRule.clean() (through the services) judges the whole."""

    SUBJECT_FIELDS = ("subject_group", "subject_device", "subject_role", "subject_service")

    subject_kind = forms.ChoiceField(label="Subject", choices=SubjectKind.choices)
    subject_role = forms.ChoiceField(label="Role", required=False, choices=[("", "—"), *RuleRole.choices],
                                     help_text="For a role subject; the rule covers every higher role too.")
    subject_service = forms.CharField(label="Service credential", max_length=128, required=False,
                                      help_text="For a service subject: the credential's id.")
    action = forms.ChoiceField(choices=Action.choices)
    topic_filter = forms.CharField(
        label="Topic filter", max_length=1024,
        help_text="An MQTT filter; whole levels may be {device}, {tenant}, {group} or {attr:KEY}.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "none", "autocomplete": "off"}))
    effect = forms.ChoiceField(choices=Effect.choices, initial=Effect.ALLOW)
    max_qos = forms.TypedChoiceField(label="Highest QoS", required=False, coerce=int, empty_value=None,
                                     choices=[("", "any"), (0, "0"), (1, "1"), (2, "2")])
    allow_retain = forms.BooleanField(label="Allow retained publishes", required=False, initial=True)
    enabled = forms.BooleanField(required=False, initial=True)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, tenant: Tenant, *args: Any, rule: AclRule | None = None, **kwargs: Any) -> None:
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "subject_kind": rule.subject_kind, "subject_group": rule.subject_group_id,
                "subject_device": rule.subject_device.name if rule.subject_device is not None else "",
                "subject_role": rule.subject_role, "subject_service": rule.subject_service,
                "action": rule.action, "topic_filter": rule.topic_filter, "effect": rule.effect,
                "max_qos": rule.max_qos, "allow_retain": rule.allow_retain, "enabled": rule.enabled,
                "description": rule.description,
            }
        super().__init__(*args, **kwargs)
        self.fields["subject_group"] = GroupField(tenant, label="Group", empty_label="—",
                                                  help_text="For a group subject.")
        # A name, not a list: a tenant may have many thousands of devices.
        self.fields["subject_device"] = forms.ModelChoiceField(
            label="Device", required=False, to_field_name="name",
            queryset=Device.objects.filter(tenant=tenant), help_text="For a device subject: its name.",
            widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "none", "autocomplete": "off"}),
            error_messages={"invalid_choice": "There is no device with this name in the tenant."})
        self.order_fields(["subject_kind", "subject_group", "subject_device", "subject_role", "subject_service",
                           "action", "topic_filter", "effect", "max_qos", "allow_retain", "enabled",
                           "description"])

    def rule_fields(self) -> dict[str, Any]:
        """The cleaned fields as the services take them."""
        data = dict(self.cleaned_data)
        data["subject_role"] = data.get("subject_role") or ""
        data["subject_service"] = data.get("subject_service") or ""
        return data


class ExplainForm(acl_forms.ExplainForm):
    """The admin's explain form without its tenant choice: the portal acts on the page's tenant."""

    tenant = None  # type: ignore[assignment]  # Django's way to drop an inherited form field
    device = forms.CharField(required=False, help_text="A device name; or pick a role or a service.",
                             widget=forms.TextInput(attrs={"list": "device-names", "spellcheck": "false",
                                                           "autocapitalize": "none", "autocomplete": "off"}))
    qos = forms.TypedChoiceField(label="QoS", choices=[(0, "0"), (1, "1"), (2, "2")], coerce=int, initial=0,
                                 # Django takes any empty value; the stubs allow str or None only.
                                 required=False, empty_value=0)  # type: ignore[arg-type]
    topic = forms.CharField(max_length=65535, strip=False, help_text="A topic, or a filter for subscribe.",
                            widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "none"}))


# Enrollment tokens ----------------------------------------------------------------------------------

class EnrollmentTokenForm(forms.Form):
    label = forms.CharField(max_length=200, required=False, help_text="What it is for, e.g. batch 2024-11.")
    uses = forms.IntegerField(label="Uses", min_value=1, max_value=1_000_000, initial=1,
                              help_text="How many devices may enroll with it.")
    expires_in = forms.CharField(label="Valid for", initial="24h", max_length=32,
                                 help_text="A duration: 90m, 24h, 7d, 2w (at most 10 years).")
    attributes = AttributesField(label="Attributes of enrolled devices")

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"] = GroupField(tenant, help_text="Enrolled devices join this group.")
        self.order_fields(["label", "uses", "expires_in", "group", "attributes"])

    def clean_expires_in(self) -> Any:
        try:
            return parse_duration(self.cleaned_data["expires_in"])
        except PkiError as exc:
            raise ValidationError(exc.message) from None


# Bulk import ----------------------------------------------------------------------------------------

class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text=(
        "A header row, then one device a row: name (required), display_name, group, tags (a;b), "
        "attributes (JSON) or attr.KEY columns, csr (PEM)."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,.json,application/json"}))
    issue_certs = forms.BooleanField(label="Issue certificates", required=False, help_text=(
        "Each new device gets a certificate (from its csr column, or with a key generated here), "
        "downloaded afterwards as one zip."))

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size is not None and upload.size > settings.ROOST_IMPORT_MAX_BODY:
            raise ValidationError(f"The file is larger than {settings.ROOST_IMPORT_MAX_BODY} bytes.")
        return upload
