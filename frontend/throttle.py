"""Sign-in throttling: failed attempts per user name and client address, counted in the cache.

A fixed one-minute window starts at the first failure; once ROOST_LOGIN_ATTEMPTS failures
are counted in it, further attempts are refused without checking the password until it ends.
The cache is Redis when REDIS_URL is set, so the count holds across web processes.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60


def client_address(request: HttpRequest | None) -> str:
    """The caller's address; X-Forwarded-For counts only behind ROOST_NUM_PROXIES proxies."""
    if request is None:
        return ""
    # DRF's get_ident reads META only, and honours NUM_PROXIES like the API's throttles.
    # (The stubs ask for a DRF Request; an HttpRequest has the same META.)
    return str(BaseThrottle().get_ident(request) or "")  # type: ignore[arg-type]


def _key(username: str, address: str) -> str:
    # Hashed, so that whatever someone types as a user name never becomes part of a cache key.
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    return f"portal-login-failures:{digest}"


def is_throttled(username: str, address: str) -> bool:
    return int(cache.get(_key(username, address), 0)) >= settings.ROOST_LOGIN_ATTEMPTS


def note_failure(username: str, address: str) -> None:
    key = _key(username, address)
    cache.add(key, 0, WINDOW_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr: this failure opens a new window
        cache.set(key, 1, WINDOW_SECONDS)
