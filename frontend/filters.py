"""The device list's filters, search and sort orders (django-filter)."""

from __future__ import annotations

import json
import re
from typing import Any, cast

import django_filters
from django import forms
from django.db.models import F, Q, QuerySet
from django.db.models.fields.json import KeyTransform

from acl.models import AclRule, Action, Effect, SubjectKind
from devices.models import AuditEvent, Device, DeviceGroup, Tenant
from roost.timestamps import UtcDateTimeField

YES_NO = [("", "any"), ("yes", "yes"), ("no", "no")]
# query value: (label, ordering); the first is the default. Name breaks every tie.
SORTS = {
    "name": ("name", ("name",)),
    "-name": ("name, descending", ("-name",)),
    # Devices never seen come last either way (PostgreSQL puts NULLs first when descending).
    "-last_seen": ("last seen, newest first", (F("last_seen").desc(nulls_last=True), "name")),
    "last_seen": ("last seen, oldest first", (F("last_seen").asc(nulls_last=True), "name")),
    "group": ("group", (F("group__name").asc(nulls_last=True), "name")),
    "-online": ("online first", ("-online", "name")),
    "-created": ("newest first", ("-created", "name")),
}
_ATTRIBUTE = re.compile(r"\s*([^=\s][^=]{0,63}?)\s*(?:=\s*(.*?)\s*)?", re.DOTALL)


def _yes_no(queryset: QuerySet[Device], field: str, value: str) -> QuerySet[Device]:
    if value == "yes":
        return queryset.filter(**{field: True})
    if value == "no":
        return queryset.filter(**{field: False})
    return queryset


class UtcDateTimeFilter(django_filters.DateTimeFilter):
    field_class = UtcDateTimeField


class GroupNameField(forms.ModelChoiceField[DeviceGroup]):
    """A tenant's groups by name alone (a group's str() starts with its tenant's slug)."""

    def label_from_instance(self, obj: DeviceGroup) -> str:
        return obj.name


class GroupFilter(django_filters.ModelChoiceFilter):
    # The stubs take field_class for a ModelChoiceField of Model itself (the type is invariant).
    field_class = GroupNameField  # type: ignore[assignment]


class DeviceFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search",
                                  widget=forms.TextInput(attrs={"type": "search", "placeholder": "name or display name"}))
    group = GroupFilter(queryset=DeviceGroup.objects.none(), label="Group", empty_label="any group",
                        method="in_group")
    attr = django_filters.CharFilter(method="with_attribute", label="Attribute",
                                     widget=forms.TextInput(attrs={"placeholder": "key or key=value"}))
    online = django_filters.ChoiceFilter(choices=YES_NO[1:], empty_label="any", label="Online",
                                         method="is_online")
    enabled = django_filters.ChoiceFilter(choices=YES_NO[1:], empty_label="any", label="Enabled",
                                          method="is_enabled")
    sort = django_filters.ChoiceFilter(choices=[(k, v[0]) for k, v in SORTS.items()], empty_label=None,
                                       label="Sort by", method="sorted_by")

    class Meta:
        model = Device
        fields: list[str] = []

    def __init__(self, data: Any, tenant: Tenant, **kwargs: Any) -> None:
        queryset = Device.objects.filter(tenant=tenant).select_related("group")
        super().__init__(data, queryset=queryset, **kwargs)
        group = cast(GroupFilter, self.filters["group"])
        group.queryset = DeviceGroup.objects.filter(tenant=tenant).order_by("name")

    @property
    def qs(self) -> QuerySet[Device]:
        queryset = super().qs
        # The default order applies when no valid sort was asked for.
        if not (getattr(self.form, "cleaned_data", None) or {}).get("sort"):
            queryset = queryset.order_by("name")
        return queryset

    def search(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(display_name__icontains=value))

    def in_group(self, queryset: QuerySet[Device], name: str, value: DeviceGroup | None) -> QuerySet[Device]:
        # A group includes the devices of the groups nested under it.
        return queryset.filter(group_id__in=value.descendant_ids()) if value is not None else queryset

    def with_attribute(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        match = _ATTRIBUTE.fullmatch(value or "")
        if not match:
            return queryset
        key, wanted = match.group(1), match.group(2)
        queryset = queryset.filter(attributes__has_key=key)
        if wanted is None:
            return queryset
        # KeyTransform takes the key literally (a key may contain "__"); "3" also finds the number 3.
        match_value = Q(_attr=wanted)
        try:
            typed = json.loads(wanted)
        except ValueError:
            typed = None
        if isinstance(typed, int | float | bool):
            match_value |= Q(_attr=typed)
        return queryset.alias(_attr=KeyTransform(key, "attributes")).filter(match_value)

    def is_online(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        return _yes_no(queryset, "online", value)

    def is_enabled(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        return _yes_no(queryset, "enabled", value)

    def sorted_by(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        return queryset.order_by(*SORTS.get(value, SORTS["name"])[1])


class AuditFilter(django_filters.FilterSet):
    """The audit log's filters; the choices of action and target type are the tenant's own."""

    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains", label="Actor",
                                      max_length=200, widget=forms.TextInput(attrs={"placeholder": "user or api-key:NAME"}))
    action = django_filters.ChoiceFilter(choices=[], empty_label="any action", label="Action")
    target_type = django_filters.ChoiceFilter(choices=[], empty_label="any target", label="Target type")
    since = UtcDateTimeFilter(field_name="created", lookup_expr="gte", label="Since (UTC)",
                                          widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = UtcDateTimeFilter(field_name="created", lookup_expr="lt", label="Until (UTC)",
                                          widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def __init__(self, data: Any, tenant: Tenant, **kwargs: Any) -> None:
        events = AuditEvent.objects.filter(tenant=tenant)
        super().__init__(data, queryset=events.order_by("-created", "-id"), **kwargs)
        for name, column in (("action", "action"), ("target_type", "target_type")):
            values = events.order_by(column).values_list(column, flat=True).distinct()
            self.filters[name].extra["choices"] = [(v, v) for v in values]

    def clean_qs(self) -> QuerySet[AuditEvent]:
        """The filtered events, newest first; none while a filter is invalid (rather than all of them)."""
        if self.is_bound and not self.is_valid():
            return AuditEvent.objects.none()
        return self.qs


class RuleFilter(django_filters.FilterSet):
    """The access rules list's search and filters."""

    q = django_filters.CharFilter(method="search", label="Search", max_length=200,
                                  widget=forms.TextInput(attrs={"type": "search", "placeholder": "topic, description, subject"}))
    effect = django_filters.ChoiceFilter(choices=Effect.choices, empty_label="any effect", label="Effect")
    action = django_filters.ChoiceFilter(choices=Action.choices, empty_label="any action", label="Action")
    subject_kind = django_filters.ChoiceFilter(choices=SubjectKind.choices, empty_label="any subject", label="Subject")

    class Meta:
        model = AclRule
        fields: list[str] = []

    def __init__(self, data: Any, tenant: Tenant, **kwargs: Any) -> None:
        queryset = AclRule.objects.filter(tenant=tenant).select_related("subject_group", "subject_device")
        super().__init__(data, queryset=queryset.order_by("id"), **kwargs)

    def search(self, queryset: QuerySet[AclRule], name: str, value: str) -> QuerySet[AclRule]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(topic_filter__icontains=value) | Q(description__icontains=value)
                               | Q(subject_device__name__icontains=value) | Q(subject_group__name__icontains=value)
                               | Q(subject_role__icontains=value) | Q(subject_service__icontains=value))
