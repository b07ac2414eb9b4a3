"""Daphne (the web server `roost up` runs) adjusted for Roost; imported by roost.asgi.

Twisted parses every multipart/form-data POST body into `request.args` before the ASGI
application sees it, and answers a bare 400 with no body when it cannot: a malformed upload
to the API then gets no error in the API's shape, and every upload is held twice in memory.
Django parses multipart bodies itself, so Twisted's parse is switched off.
"""

from __future__ import annotations

from typing import Any

try:
    from daphne.http_protocol import WebRequest
except ImportError:  # not served by daphne (tests' ASGI clients, other servers)
    WebRequest = None


_PATCHED = "roost_patched"  # marks our __init__, so that a second import does not wrap it again


def _without_form_parsing(init: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    setattr(__init__, _PATCHED, True)
    return __init__


if WebRequest is not None and not getattr(WebRequest.__init__, _PATCHED, False):
    WebRequest.__init__ = _without_form_parsing(WebRequest.__init__)
