"""The one error type the PKI raises; views turn it into an HTTP answer, commands into CommandError."""

from __future__ import annotations


class PkiError(Exception):
    """A refusal with a machine-readable code and the HTTP status it maps to."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def bad_request(message: str, code: str = "invalid") -> PkiError:
    return PkiError(message, code=code, status=400)


def forbidden(message: str, code: str = "forbidden") -> PkiError:
    return PkiError(message, code=code, status=403)


def not_found(message: str, code: str = "not_found") -> PkiError:
    return PkiError(message, code=code, status=404)


def conflict(message: str, code: str = "conflict") -> PkiError:
    return PkiError(message, code=code, status=409)


def too_large(message: str, code: str = "too_large") -> PkiError:
    return PkiError(message, code=code, status=413)
