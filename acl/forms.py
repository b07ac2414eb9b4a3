"""Admin forms: the explain simulator and the impact preview."""

from __future__ import annotations

from typing import Any

from django import forms

from devices.models import Tenant

from .explain import EXPLAIN_ACTIONS
from .models import AclRule

ROLE_CHOICES = [("", "—"), ("viewer", "viewer"), ("operator", "operator"), ("admin", "admin"), ("owner", "owner")]


class ExplainForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), to_field_name="slug")
    device = forms.CharField(required=False, help_text="A device name; or pick a role or a service.")
    role = forms.ChoiceField(choices=ROLE_CHOICES, required=False)
    service = forms.CharField(required=False, help_text="A service credential id.")
    action = forms.ChoiceField(choices=[(a, a) for a in EXPLAIN_ACTIONS])
    topic = forms.CharField(max_length=65535, strip=False, help_text="A topic, or a filter for subscribe.")
    qos = forms.TypedChoiceField(choices=[(0, "0"), (1, "1"), (2, "2")], coerce=int, initial=0)
    retain = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        chosen = [name for name in ("device", "role", "service") if data.get(name)]
        if len(chosen) != 1:
            raise forms.ValidationError("Pick exactly one of a device, a role or a service credential.")
        return data


class RuleImpactForm(forms.ModelForm[AclRule]):
    class Meta:
        model = AclRule
        fields = [
            "tenant", "subject_kind", "subject_group", "subject_device", "subject_role",
            "subject_service", "action", "topic_filter", "effect", "max_qos", "allow_retain",
            "enabled", "description",
        ]
