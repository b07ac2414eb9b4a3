"""Filters every list shares.

`?ordering=`: one field, optionally `-` for descending, from the view's `ordering_fields`.
An unknown field is a 400 that lists the valid ones (DRF would silently ignore it, and a
script would page through a different order than it asked for).

`UtcIsoDateTimeFilter`: an ISO 8601 time, moved to UTC before it reaches the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import django_filters
from django_filters.fields import IsoDateTimeField
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

from roost.timestamps import as_utc

from .errors import bad_request


class UtcIsoDateTimeField(IsoDateTimeField):
    def clean(self, value: object) -> datetime | None:
        cleaned = super().clean(value)
        return None if cleaned is None else as_utc(cleaned)


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class StrictOrderingFilter(OrderingFilter):
    ordering_description = "Sort by one field; prefix it with `-` for descending order."

    def field_names(self, queryset: Any, view: Any, request: Request | None = None) -> list[str]:
        context = {"request": request} if request is not None else {}
        return [str(item[0]) for item in self.get_valid_fields(queryset, view, context)]

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> Any:
        raw = request.query_params.get(self.ordering_param)
        if raw is None or raw.strip() == "":
            return self.get_default_ordering(view)
        term = raw.strip()
        valid = self.field_names(queryset, view, request)
        if term.removeprefix("-") not in valid:
            choices = ", ".join(valid) or "nothing"
            raise bad_request(f"Cannot sort by {term!r}; use one of {choices} (with `-` for descending).",
                              code="invalid_ordering", field=self.ordering_param)
        return (term,)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        queryset = getattr(view, "queryset", None)
        try:
            names = self.field_names(queryset, view) if queryset is not None else []
        except Exception:  # a view whose fields cannot be known without a request
            names = []
        schema: dict[str, Any] = {"type": "string"}
        if names:
            schema["enum"] = [value for name in names for value in (name, f"-{name}")]
        return [{
            "name": self.ordering_param, "required": False, "in": "query",
            "description": self.ordering_description, "schema": schema,
        }]
