"""Cursor pages of topics chosen by an MQTT filter, in topic order.

Whether a topic belongs is decided by the one topic algebra (`broker.mqtt.filters`), not by
SQL: the database only narrows by the filter's literal prefix and hands over topics in order,
a batch at a time (topics alone; payloads are read for the page only). The cursor holds the
last topic of a page, so pages stay correct while messages come and go. One request scans
at most `max_scan` topics; a page may then come back short, with a `next` link that goes on
after the last topic scanned.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from itertools import takewhile
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from roost.api.errors import bad_request
from roost.api.pagination import LimitedCursorPagination

MAX_CURSOR_CHARS = 4 * 65536 + 64  # a topic of 65535 bytes, base64 of its JSON


def narrowed(queryset: QuerySet[Any], topic_filter: str) -> QuerySet[Any]:
    """Rows that may match `topic_filter`: those under its literal levels before a wildcard.

    A superset is fine (on SQLite `startswith` ignores case): the matcher decides.
    """
    levels = topic_filter.split("/")
    literal = list(takewhile(lambda level: level not in ("+", "#"), levels))
    if len(literal) == len(levels):
        return queryset.filter(topic=topic_filter)
    if not literal:
        return queryset
    prefix = "/".join(literal)
    under = Q(topic__startswith=prefix + "/")
    if levels[len(literal)] == "#":  # `a/#` matches `a` itself too [MQTT-4.7.1-2]
        under |= Q(topic=prefix)
    return queryset.filter(under)


def _invalid_cursor() -> Exception:
    return bad_request("The cursor is not valid; use the `next` or `previous` link as given.",
                       code="invalid_cursor", field="cursor")


class TopicPagination(LimitedCursorPagination):
    batch = 1000
    max_scan = 50_000

    def topics_page(self, topics: QuerySet[Any], keep: Callable[[str], bool], request: Request) -> list[str]:
        """A page of the topics (a `values_list("topic", flat=True)` query) that `keep` accepts."""
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        backwards, position = self._decode(request)
        order, after = ("-topic", "topic__lt") if backwards else ("topic", "topic__gt")
        page: list[str] = []
        scanned, last, more, stopped = 0, position, False, False
        while not (more or stopped):
            query = topics.order_by(order)
            if last is not None:
                query = query.filter(**{after: last})
            batch = list(query[: self.batch])
            for topic in batch:
                if keep(topic):
                    if len(page) == self.page_size:
                        more = True  # one beyond the page: there is a next one
                        break
                    page.append(topic)
                last = topic
                scanned += 1
                if scanned >= self.max_scan:
                    stopped = True
                    break
            if len(batch) < self.batch:
                break
        # The position to go on from in the direction scanned, if there is more that way.
        onward = (page[-1] if more else last) if (more or stopped) else None
        if backwards:
            page.reverse()
            self._previous = onward
            self._next = page[-1] if page else position
        else:
            self._next = onward
            self._previous = (page[0] if page else position) if position is not None else None
        return page

    def get_next_link(self) -> str | None:
        return None if self._next is None else self._link(False, self._next)

    def get_previous_link(self) -> str | None:
        return None if self._previous is None else self._link(True, self._previous)

    def get_paginated_response_data(self, results: list[Any]) -> dict[str, Any]:
        return {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": results}

    def _link(self, backwards: bool, topic: str) -> str:
        token = json.dumps({"r": int(backwards), "p": topic}, separators=(",", ":"), ensure_ascii=False)
        encoded = base64.urlsafe_b64encode(token.encode("utf-8")).decode().rstrip("=")
        return str(replace_query_param(self.base_url, self.cursor_query_param, encoded))

    def _decode(self, request: Request) -> tuple[bool, str | None]:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return False, None
        if len(raw) > MAX_CURSOR_CHARS:
            raise _invalid_cursor()
        try:
            token = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _invalid_cursor() from None
        if not isinstance(token, dict) or token.get("r") not in (0, 1) or not isinstance(token.get("p"), str):
            raise _invalid_cursor()
        topic: str = token["p"]
        if "\x00" in topic or not topic:
            raise _invalid_cursor()
        try:
            topic.encode("utf-8")  # a lone surrogate would fail in the database driver
        except UnicodeEncodeError:
            raise _invalid_cursor() from None
        return bool(token["r"]), topic
