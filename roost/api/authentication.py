"""`Authorization: Bearer <api key>` for scripts; browsers keep the session with CSRF."""

from __future__ import annotations

import ipaddress

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from devices.apikeys import check_key, note_use
from devices.models import ApiKey


class KeyUser:
    """What `request.user` is for a request made with an API key: no Django user at all."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def get_username(self) -> str:
        return self.api_key.label

    def __str__(self) -> str:
        return self.api_key.label


def client_address(request: Request) -> str | None:
    """The caller's IP address, as DRF's throttles see it (X-Forwarded-For only behind
    ROOST_NUM_PROXIES proxies); None when that is not an IP address (a forged header)."""
    from rest_framework.throttling import BaseThrottle

    ident = BaseThrottle().get_ident(request) or ""
    try:
        return str(ipaddress.ip_address(ident))
    except ValueError:
        return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[KeyUser, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.",
                                                  code="invalid_api_key")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The API key is not valid.", code="invalid_api_key") from None
        api_key = check_key(raw)
        if api_key is None:
            # One answer for unknown, revoked and expired keys: no oracle for key prefixes.
            raise exceptions.AuthenticationFailed("The API key is not valid, revoked or expired.",
                                                  code="invalid_api_key")
        note_use(api_key, client_address(request))
        return KeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'

