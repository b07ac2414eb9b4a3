"""Cursor pagination for every list: stable under inserts, `next`/`previous` links, `limit`."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    # Views set their own `ordering`; this is the default for models with `created`.
    ordering = ("-created", "-id")
