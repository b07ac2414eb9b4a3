"""Cursor pagination for every list: stable under inserts, `next`/`previous` links, `limit`.

A view sets `ordering` (its default) and `ordering_fields` (what `?ordering=` may name). The
cursor remembers a position in the first ordering field, so that field should be non-null;
the primary key is appended as a tie-breaker so that equal values page deterministically.
A cursor or limit the client made up is a 400 that names the parameter, never a 404 or 500.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from .errors import bad_request

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}", re.ASCII)


class ApiCursorPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    page_size_query_description = "How many results per page (1 to 1000; default 100)."
    cursor_query_description = "Where the page starts: copy it from a response's `next` or `previous` link."
    max_page_size = 1000
    # Views set their own `ordering`; this is the default for models with `created`.
    ordering = ("-created", "-id")

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        value = raw.strip()
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= self.max_page_size:
            raise bad_request(f"`limit` must be a whole number from 1 to {self.max_page_size}.",
                              code="invalid_limit", field="limit")
        return int(value)

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = tuple(super().get_ordering(request, queryset, view))
        if not {"pk", "-pk", "id", "-id"} & set(ordering):
            tie = "-pk" if ordering and ordering[0].startswith("-") else "pk"
            ordering = (*ordering, tie)
        return ordering

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None and not _BASE64.fullmatch(encoded):
            raise _invalid_cursor()  # DRF would skip the junk and start from the top
        try:
            cursor = super().decode_cursor(request)
        except NotFound:  # DRF's answer to a cursor it cannot read; a made-up cursor is a bad request
            raise _invalid_cursor() from None
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self._queryset_model = getattr(queryset, "model", None)
        return super().paginate_queryset(queryset, request, view)

    def _check_position(self, position: str) -> None:
        """A position must be a value of the ordering field, or the query would fail."""
        if "\x00" in position:
            raise _invalid_cursor()
        model = getattr(self, "_queryset_model", None)
        if model is None:
            return
        name = self.ordering[0].lstrip("-")
        name = model._meta.pk.name if name == "pk" else name
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return  # an annotation: the database will judge it
        try:
            field.to_python(position)
        except (ValidationError, TypeError, ValueError):
            raise _invalid_cursor() from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size,
                                       "default": self.page_size}
        return parameters


def _invalid_cursor() -> Exception:
    return bad_request("The cursor is not valid; use the `next` or `previous` link as given.",
                       code="invalid_cursor", field="cursor")
