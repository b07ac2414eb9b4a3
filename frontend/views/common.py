"""Small helpers shared by the portal's views."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest

PAGE_SIZE = 25


def htmx_partial(request: HttpRequest) -> bool:
    """True when htmx asks for a fragment (not a boosted link, not a history restore):
    list views then render only their table."""
    headers = request.headers
    return (headers.get("HX-Request") == "true" and headers.get("HX-Boosted") != "true"
            and headers.get("HX-History-Restore-Request") != "true")


def paginate(request: HttpRequest, items: Any, per_page: int = PAGE_SIZE) -> Page[Any]:
    """The page `?page=N` asks for; a page past the end gives the last one, nonsense the first."""
    return Paginator(items, per_page).get_page(request.GET.get("page"))
