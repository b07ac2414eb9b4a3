"""Query filters of the registry lists (django-filter; each one a query parameter in the schema)."""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform
from drf_spectacular.utils import extend_schema_field
from rest_framework.request import Request

from broker.integration.models import ConnectionEvent
from roost.api.filters import UtcIsoDateTimeFilter

from ..models import AuditEvent, Device, DeviceGroup

MAX_ATTR_FILTERS = 10


class MultipleValueField(forms.Field):
    """Every value of a repeated query parameter (`?attr=a:1&attr=b:2`)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        values = [value] if isinstance(value, str) else list(value)
        return [str(v) for v in values]


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class AttributeFilter(django_filters.Filter):
    field_class = MultipleValueField


def parse_attribute_filters(values: list[str]) -> list[tuple[str, str]]:
    """`key:value` pairs; the key is everything before the first colon."""
    if len(values) > MAX_ATTR_FILTERS:
        raise forms.ValidationError(f"At most {MAX_ATTR_FILTERS} attr filters.", code="invalid")
    pairs = []
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep or not key or len(key) > 128 or "\x00" in raw:
            raise forms.ValidationError(f"{raw!r} is not key:value (a key of 1 to 128 characters, then a colon).",
                                        code="invalid")
        pairs.append((key, value))
    return pairs


def with_attribute(queryset: QuerySet[Device], key: str, value: str, alias: str = "attr_0") -> QuerySet[Device]:
    """Devices whose attribute `key` is `value`: as a JSON string, or as the JSON scalar the text
    spells (`5`, `2.5`, `true`, `false`), so `attr=floor:3` finds both 3 and "3".

    Django's JSON key comparison (`->` on PostgreSQL, JSON_EXTRACT on SQLite) compares typed
    JSON values the same way on both databases. The key is one key, never a path: a key with
    dots or `__` in it is taken literally (a KeyTransform, not a `attributes__…` lookup)."""
    candidates: list[Any] = [value]
    try:
        scalar = json.loads(value)
    except ValueError:
        scalar = None
    if isinstance(scalar, bool | int | float) and scalar == scalar and abs(scalar) != float("inf"):
        candidates.append(scalar)
    matches = Q()
    for candidate in candidates:
        matches |= Q(**{alias: candidate})
    return queryset.alias(**{alias: KeyTransform(key, "attributes")}).filter(matches)


class DeviceFilter(django_filters.FilterSet):
    prefix = django_filters.CharFilter(field_name="name", lookup_expr="startswith", max_length=128,
                                       help_text="Devices whose name starts with this (case-sensitive).")
    search = django_filters.CharFilter(method="filter_search", max_length=200,
                                       help_text="Devices whose name or display name contains this "
                                                 "(case-insensitive).")
    group = django_filters.CharFilter(method="filter_group", max_length=128,
                                      help_text="Devices in this group (by name) or in any group nested under it; "
                                                "an unknown group matches nothing.")
    attr = AttributeFilter(method="filter_attributes",
                           help_text="`key:value`, repeatable (all must match): devices whose attribute `key` "
                                     "equals `value`. The value is compared as a string and, when it reads as "
                                     "a JSON number, true, false or null, also as that value.")
    online = django_filters.BooleanFilter(help_text="Only devices connected now (true) or not (false).")
    enabled = django_filters.BooleanFilter(help_text="Only enabled (true) or disabled (false) devices.")

    class Meta:
        model = Device
        fields = ["prefix", "search", "group", "attr", "online", "enabled"]

    def filter_search(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(display_name__icontains=value))

    def filter_group(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        if not value:
            return queryset
        request = self.request  # DRF's, from the filter backend
        tenant = request.parser_context["view"].tenant if isinstance(request, Request) else None
        group = DeviceGroup.objects.filter(tenant=tenant, name=value).first()
        if group is None:
            return queryset.none()
        return queryset.filter(group_id__in=group.descendant_ids())

    def filter_attributes(self, queryset: QuerySet[Device], name: str, values: list[str]) -> QuerySet[Device]:
        if not values:
            return queryset
        try:
            pairs = parse_attribute_filters(values)
        except forms.ValidationError as exc:
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"attr": exc.messages}) from None
        for index, (key, value) in enumerate(pairs):
            queryset = with_attribute(queryset, key, value, alias=f"attr_{index}")
        return queryset


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_label", max_length=200,
                                      help_text="Who acted, as the trail names them: a user name, "
                                                "`api-key:NAME` or `system`.")
    actor_kind = django_filters.ChoiceFilter(choices=[("user", "user"), ("api_key", "api_key"),
                                                      ("system", "system")],
                                             help_text="The kind of actor.")
    action = django_filters.CharFilter(max_length=64, help_text="One action, e.g. `device.create`.")
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith", max_length=64,
                                              help_text="Actions starting with this, e.g. `device.`.")
    target_type = django_filters.CharFilter(max_length=64, help_text="The kind of object, e.g. `device`, "
                                                                     "`devicegroup`, `membership`, `apikey`.")
    target_id = django_filters.CharFilter(max_length=64, help_text="The object's id (with target_type).")
    target = django_filters.CharFilter(field_name="target_repr", max_length=255,
                                       help_text="The object as the trail shows it, e.g. `acme/sensor-1`.")
    since = UtcIsoDateTimeFilter(field_name="created", lookup_expr="gte",
                                             help_text="Events at or after this ISO 8601 time.")
    until = UtcIsoDateTimeFilter(field_name="created", lookup_expr="lt",
                                             help_text="Events before this ISO 8601 time.")

    class Meta:
        model = AuditEvent
        fields = ["actor", "actor_kind", "action", "action_prefix", "target_type", "target_id", "target",
                  "since", "until"]


class ConnectionEventFilter(django_filters.FilterSet):
    event = django_filters.ChoiceFilter(choices=[("connected", "connected"), ("disconnected", "disconnected"),
                                                 ("refused", "refused")],
                                        help_text="Only connects, disconnects or refusals.")
    since = UtcIsoDateTimeFilter(field_name="at", lookup_expr="gte",
                                             help_text="Events at or after this ISO 8601 time.")
    until = UtcIsoDateTimeFilter(field_name="at", lookup_expr="lt",
                                             help_text="Events before this ISO 8601 time.")

    class Meta:
        model = ConnectionEvent
        fields = ["event", "since", "until"]
