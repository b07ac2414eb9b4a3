"""Cursor pagination for every list: `limit`, `next`/`previous` links, stable under inserts.

The cursor holds the value of EVERY ordering field of the row at the edge of the page, and
the ordering always ends with a unique field, so a page starts strictly after (value, …,
unique key): every row comes exactly once whatever the ties (a bulk import writes thousands
of rows in one millisecond; most devices were never seen), and the query stays a range scan.
A view sets `ordering` (its default) and `ordering_fields` (what `?ordering=` may name). A
cursor or limit the client made up is a 400 that names the parameter, never a 404 or 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any
from uuid import UUID

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Model, Q, QuerySet
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from roost.timestamps import as_utc

from .errors import bad_request

MAX_CURSOR_CHARS = 4096


def _invalid_cursor() -> Exception:
    return bad_request("The cursor is not valid; use the `next` or `previous` link as given.",
                       code="invalid_cursor", field="cursor")


def _plain(value: Any) -> Any:
    """A cursor value as JSON can carry it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


class LimitedCursorPagination(CursorPagination):
    """What every list shares: `limit` (1 to 1000, checked), its schema, `cursor` text."""

    page_size = 100
    page_size_query_param = "limit"
    page_size_query_description = "How many results per page (1 to 1000; default 100)."
    cursor_query_description = "Where the page starts: copy it from a response's `next` or `previous` link."
    max_page_size = 1000
    # Views set their own `ordering`; this is the default for models with `created`.
    ordering: tuple[str, ...] = ("-created", "-id")
    base_url: str  # set by paginate_queryset, before any link is made

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        value = raw.strip()
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= self.max_page_size:
            raise bad_request(f"`limit` must be a whole number from 1 to {self.max_page_size}.",
                              code="invalid_limit", field="limit")
        return int(value)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size,
                                       "default": self.page_size}
        return parameters


class KeysetPagination(LimitedCursorPagination):
    """Cursor pagination on the whole ordering.

    The view may name `keyset_unique` (default "pk"), the field that breaks ties, and
    `keyset_aliases` ({"last_seen": "last_seen_key"}): an ordering term sorted by an
    annotation of the view's queryset instead (e.g. a non-null stand-in for a nullable field).
    A view that is not a list (an action) sets `ordering` on the paginator instance.
    """

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        if any(hasattr(backend, "get_ordering") for backend in getattr(view, "filter_backends", [])):
            terms = tuple(CursorPagination.get_ordering(self, request, queryset, view))
        else:  # no `?ordering=` on this view: its own fixed order
            terms = tuple(getattr(view, "ordering", None) or self.ordering)
        aliases: dict[str, str] = getattr(view, "keyset_aliases", {}) or {}
        unique: str = getattr(view, "keyset_unique", "pk") or "pk"
        mapped = []
        for term in terms:
            descending, name = term.startswith("-"), term.lstrip("-")
            mapped.append(("-" if descending else "") + aliases.get(name, name))
        names = {term.lstrip("-") for term in mapped}
        if unique not in names and not ({"pk", "id"} & names and unique in {"pk", "id"}):
            mapped.append(("-" if mapped and mapped[0].startswith("-") else "") + unique)
        return tuple(mapped)

    def paginate_queryset(self, queryset: QuerySet[Any] | Sequence[Any], request: Request,
                          view: Any = None) -> list[Any]:
        if not isinstance(queryset, QuerySet):
            raise TypeError("KeysetPagination pages querysets only: it orders and filters them")
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.ordering = self.get_ordering(request, queryset, view)
        self._model = queryset.model
        reverse, position = self._decode(request, queryset)
        order = [_flip(term) for term in self.ordering] if reverse else list(self.ordering)
        queryset = queryset.order_by(*order)
        if position is not None:
            queryset = queryset.filter(_after(order, position))
        rows = list(queryset[: self.page_size + 1])
        more = len(rows) > self.page_size
        page = rows[: self.page_size]
        if reverse:
            page.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, position is not None
        self.page = page
        self._position = position
        self.display_page_controls = self.has_next or self.has_previous
        return page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        if not self.page:  # an empty page before the first row: the next one is the start
            return str(remove_query_param(self.base_url, self.cursor_query_param))
        return self._link(False, self._values(self.page[-1]))

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.page:
            return self._link(True, self._position or [])
        return self._link(True, self._values(self.page[0]))

    # The cursor itself ------------------------------------------------------------------------

    def _values(self, row: Any) -> list[Any]:
        values = []
        for term in self.ordering:
            name = term.lstrip("-")
            value = row[name] if isinstance(row, dict) else getattr(row, "pk" if name == "pk" else name)
            values.append(_plain(value))
        return values

    def _link(self, reverse: bool, values: list[Any]) -> str:
        token = json.dumps({"r": int(reverse), "p": values}, separators=(",", ":"))
        encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
        return str(replace_query_param(self.base_url, self.cursor_query_param, encoded))

    def _decode(self, request: Request, queryset: QuerySet[Any]) -> tuple[bool, list[Any] | None]:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return False, None
        if len(raw) > MAX_CURSOR_CHARS:
            raise _invalid_cursor()
        try:
            token = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _invalid_cursor() from None
        if (not isinstance(token, dict) or token.get("r") not in (0, 1) or not isinstance(token.get("p"), list)
                or len(token["p"]) != len(self.ordering)):
            raise _invalid_cursor()
        values = [self._value(queryset, term.lstrip("-"), value) for term, value in zip(self.ordering, token["p"],
                                                                                       strict=True)]
        return bool(token["r"]), values

    def _value(self, queryset: QuerySet[Any], name: str, value: Any) -> Any:
        """A cursor value checked against its field, so a made-up one is a 400, not a 500."""
        if not isinstance(value, str | int | float | bool) or isinstance(value, str) and "\x00" in value:
            raise _invalid_cursor()  # null included: keyset fields are never null
        field = self._field(queryset, name)
        if field is None:
            raise _invalid_cursor()
        try:
            python = field.to_python(value)
            return as_utc(python) if isinstance(python, datetime) else python
        except (ValidationError, TypeError, ValueError, OverflowError):
            raise _invalid_cursor() from None

    @staticmethod
    def _field(queryset: QuerySet[Any], name: str) -> Any:
        model: type[Model] = queryset.model
        if name == "pk":
            return model._meta.pk
        annotation = queryset.query.annotations.get(name)
        if annotation is not None:
            return annotation.output_field
        try:
            return model._meta.get_field(name)
        except FieldDoesNotExist:
            return None


def _flip(term: str) -> str:
    return term[1:] if term.startswith("-") else "-" + term


def _after(order: list[str], values: list[Any]) -> Q:
    """Rows strictly after `values` in `order`: (a > x) or (a = x and b > y) or …"""
    clauses = []
    equal = Q()
    for term, value in zip(order, values, strict=True):
        name = term.lstrip("-")
        clauses.append(equal & Q(**{f"{name}__{'lt' if term.startswith('-') else 'gt'}": value}))
        equal &= Q(**{name: value})
    return reduce(or_, clauses)
