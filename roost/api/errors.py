"""One error body for every 4xx, whichever layer refused the request.

    {"code": "invalid", "message": "…", "field": "name",
     "errors": [{"code": …, "message": …, "field": …}, …]}

`code` is for programs, `message` for people, `field` names the input it applies to (null
when the whole request is at fault). `errors` lists every problem; the top level repeats
the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from pki.errors import PkiError


class ApiError(exceptions.APIException):
    """A refusal raised by API code: a status, a code and a message, optionally a field."""

    def __init__(self, message: str, *, code: str = "invalid", status_code: int = 400,
                 field: str | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field


def bad_request(message: str, code: str = "invalid", field: str | None = None) -> ApiError:
    return ApiError(message, code=code, status_code=400, field=field)


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(message, code=code, status_code=404)


def forbidden(message: str, code: str = "forbidden") -> ApiError:
    return ApiError(message, code=code, status_code=403)


def conflict(message: str, code: str = "conflict", field: str | None = None) -> ApiError:
    return ApiError(message, code=code, status_code=409, field=field)


def too_large(message: str, code: str = "body_too_large") -> ApiError:
    return ApiError(message, code=code, status_code=413)


def unavailable(message: str, code: str = "unavailable") -> ApiError:
    return ApiError(message, code=code, status_code=503)


def _item(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"code": code, "message": message, "field": field}


def _flatten(detail: Any, field: str | None = None) -> Iterator[dict[str, Any]]:
    """DRF's nested error details as (field path, code, message) items."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = None if key == "non_field_errors" else str(key)
            path = name if field is None else (f"{field}.{name}" if name else field)
            yield from _flatten(value, path)
    elif isinstance(detail, list):
        nested = any(isinstance(v, dict | list) for v in detail)
        for index, value in enumerate(detail):
            yield from _flatten(value, f"{field}[{index}]" if nested and field else field)
    else:
        code = getattr(detail, "code", None) or "invalid"
        yield _item(str(code), str(detail), field)


def _django_items(exc: DjangoValidationError) -> list[dict[str, Any]]:
    if hasattr(exc, "error_dict"):
        return [_item(e.code or "invalid", " ".join(e.messages), None if name == "__all__" else name)
                for name, errors in exc.error_dict.items() for e in errors]
    return [_item(e.code or "invalid", " ".join(e.messages), None) for e in exc.error_list]


def error_body(items: list[dict[str, Any]]) -> dict[str, Any]:
    first = items[0] if items else _item("invalid", "The request is invalid.", None)
    return {**first, "errors": items or [first]}


def error_response(status_code: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(error_body([_item(code, message, field)]), status=status_code, headers=headers)


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Two requests creating the same name at once: the loser meets the unique constraint."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(exc)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's EXCEPTION_HANDLER: everything a client did wrong, in one shape."""
    response = _refusal(exc)
    if response is not None:
        set_rollback()  # as DRF's own handler does: nothing of a refused request is kept
    return response


def _refusal(exc: Exception) -> Response | None:
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, exc.field)
    if isinstance(exc, PkiError):
        return error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, DjangoValidationError):
        return Response(error_body(_django_items(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "body_too_large", "The request body is too large.")
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        return error_response(404, "not_found", "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(403, "permission_denied", str(exc) or "You may not do this.")
    if isinstance(exc, SuspiciousOperation):
        return error_response(400, "bad_request", "The request was refused as malformed.")
    if isinstance(exc, IntegrityError) and _is_unique_violation(exc):
        return error_response(409, "conflict", "This conflicts with an object made at the same time; "
                                               "read the current state and try again.")
    if not isinstance(exc, exceptions.APIException):
        return None  # a server error: logged and answered 500 by Django
    headers: dict[str, str] = {}
    # APIView.handle_exception sets auth_header on the authentication errors it answers 401.
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    if isinstance(exc, exceptions.Throttled):
        wait: float | None = exc.wait  # type: ignore[attr-defined]  # DRF sets it; the stubs omit it
        if wait is not None:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
    if isinstance(exc, exceptions.ValidationError):
        items = list(_flatten(exc.detail))
    else:
        detail = exc.detail
        code = getattr(detail, "code", None) or exc.default_code
        items = [_item(str(code), str(detail), None)]
    return Response(error_body(items), status=exc.status_code, headers=headers)


# The schema of that body, for drf-spectacular.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "field", "errors"],
    "properties": {
        "code": {"type": "string", "example": "invalid"},
        "message": {"type": "string", "example": "Device 'sensor-1' already exists in tenant acme."},
        "field": {"type": "string", "nullable": True, "example": "name"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["code", "message", "field"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "field": {"type": "string", "nullable": True}},
        }},
    },
}
