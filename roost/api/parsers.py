"""The API's JSON parser: refuses, with a 400 naming the place, the strings no database can
store — a NUL character (PostgreSQL text and jsonb reject it) or half of a UTF-16 surrogate
pair (it cannot be encoded as UTF-8) — wherever they are in the body, keys included.

DRF's CharField already refuses both; free-form JSON (device attributes, a shadow document)
reaches the database without a CharField, and would otherwise fail there with a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rest_framework.parsers import JSONParser

from .errors import bad_request

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_DEPTH = 64


def _path(parent: str | None, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent or ''}[{key}]"
    return f"{parent}.{key}" if parent else key


def check_storable(value: Any, path: str | None = None, depth: int = 0) -> None:
    """Raise a 400 on the first string in `value` that cannot be stored."""
    if depth > _MAX_DEPTH:
        raise bad_request(f"The JSON is nested deeper than {_MAX_DEPTH} levels.", code="too_deep", field=path)
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise bad_request("Text may not contain NUL characters or unpaired UTF-16 surrogates.",
                              code="invalid_characters", field=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if _UNSTORABLE.search(key):
                raise bad_request("A key may not contain NUL characters or unpaired UTF-16 surrogates.",
                                  code="invalid_characters", field=path)
            check_storable(item, _path(path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, _path(path, index), depth + 1)


class ApiJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # thousands of nested brackets: not a ValueError, so DRF lets it through
            raise bad_request(f"The JSON is nested deeper than {_MAX_DEPTH} levels.", code="too_deep") from None
        check_storable(data)
        return data
