"""What every path under /api/ gets before and after its view.

Before: the path works with or without its trailing slash (no redirect, so a POST survives).
After: a 4xx that Django itself produced (an unknown route, a CSRF refusal, a malformed Host)
is answered in the API's one error shape, like every refusal from an API view, instead of
Django's HTML page.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from .errors import error_body

# Headers of the original refusal that a client may act on.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Bad Request"


def json_refusal(request: HttpRequest, response: HttpResponse) -> JsonResponse:
    """The error-shape twin of a non-JSON 4xx `response`."""
    status = response.status_code
    if status == 404:
        code = "not_found"
        message = f"Nothing at {request.path}; GET /api/v1/ lists the API's collections."
    elif status == 413:
        code, message = "body_too_large", "The request body is too large."
    else:
        phrase = _phrase(status)
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        message = f"The request was refused: {phrase}."
    answer = _refusal(status, code, message, None)
    for name in _KEPT_HEADERS:
        if name in response:
            answer[name] = response[name]
    return answer


class ApiOptionalSlashMiddleware:
    prefix = "/api/"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if not path.startswith(self.prefix):
            return self.get_response(request)
        refusal = _refuse_nul(request)
        if refusal is not None:
            return refusal
        if not path.endswith("/"):
            try:
                resolve(path)
            except Resolver404:
                try:
                    resolve(path + "/")
                except Resolver404:
                    pass
                else:
                    request.path_info = path + "/"
        response = self.get_response(request)
        if 400 <= response.status_code < 500 and not _is_json(response):
            return json_refusal(request, response)
        return response


def _refuse_nul(request: HttpRequest) -> JsonResponse | None:
    """A NUL character names nothing and no database stores it (PostgreSQL raises on it)."""
    if "\x00" in request.path_info:
        return _refusal(404, "not_found", "Nothing has a NUL character in its name.", None)
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return _refusal(400, "invalid_characters", "A query parameter may not contain NUL characters.",
                            name.replace("\x00", ""))
    return None


def _refusal(status: int, code: str, message: str, field: str | None) -> JsonResponse:
    return JsonResponse(error_body([{"code": code, "message": message, "field": field}]), status=status)


def _is_json(response: HttpResponse) -> bool:
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")
