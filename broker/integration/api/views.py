"""`retained/?filter=…`: the tenant's retained messages under an MQTT topic filter, and
clearing them through the running broker. Viewer reads, operator clears."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from acl.topics import TopicError, validate_filter
from broker.mqtt.filters import matches
from broker.mqtt.topics import SHARE_PREFIX
from devices.models import Role, Tenant
from roost.api.errors import bad_request
from roost.api.views import TenantScopedMixin

from ..models import RetainedMessage
from ..services import clear_retained
from .pagination import TopicPagination, narrowed
from .serializers import ClearedSerializer, RetainedMessageSerializer, RetainedPageSerializer

_FILTER_RULES = ("An MQTT topic filter inside the tenant: a topic, or a filter with `+` (one level) and `#` "
                 "(the rest, as the last level). As in MQTT, a filter starting with `+` or `#` does not "
                 "reach topics starting with `$`; name them (`$roost/#`).")


def topic_filter_of(request: Request, *, required: bool) -> str:
    """The `filter` query parameter, checked with the broker's own topic algebra."""
    raw = request.query_params.get("filter")
    if raw is None or raw == "":
        if required:
            raise bad_request("Say what to clear: ?filter=TOPIC or a filter such as devices/sensor-1/#.",
                              code="required", field="filter")
        return "#"
    try:
        validate_filter(raw)
    except TopicError as exc:
        raise bad_request(str(exc), code="invalid_filter", field="filter") from None
    if raw.startswith(SHARE_PREFIX):
        raise bad_request("A shared subscription ($share/…) receives no retained messages; give the plain filter.",
                          code="invalid_filter", field="filter")
    return raw


def retained_under(tenant: Tenant, topic_filter: str) -> QuerySet[RetainedMessage]:
    """The tenant's unexpired retained rows the filter may match (the matcher decides)."""
    rows = RetainedMessage.objects.filter(tenant=tenant).exclude(expires_at__lte=timezone.now())
    return narrowed(rows, topic_filter)


class RetainedView(TenantScopedMixin, APIView):
    read_role = str(Role.VIEWER)
    write_role = str(Role.OPERATOR)

    @extend_schema(
        summary="List retained messages", tags=["retained"], operation_id="tenants_retained_list",
        description="The retained messages of the tenant whose topic the filter matches, by topic, as the "
                    "broker stored them (written behind, within about a second). `payload` is text when it is "
                    "UTF-8, else base64 (see `encoding`). A page holds at most `limit` messages; it may hold "
                    "fewer when a sparse filter had to look through many topics, and `next` then goes on.",
        parameters=[
            OpenApiParameter("filter", str, description=_FILTER_RULES + " Default `#`: everything.",
                             examples=[OpenApiExample("One device's tree", value="devices/sensor-1/#"),
                                       OpenApiExample("Every device's state", value="devices/+/state")]),
            OpenApiParameter("cursor", str, description="Where the page starts: copy it from a response's `next` "
                                                        "or `previous` link."),
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                             description="How many results per page (1 to 1000; default 100)."),
        ],
        responses={200: RetainedPageSerializer},
        examples=[OpenApiExample("A page", response_only=True, value={
            "next": None, "previous": None, "results": [
                {"topic": "devices/sensor-1/state", "payload": "{\"on\": true}", "encoding": "utf-8", "qos": 1,
                 "size": 12, "updated": "2025-05-01T09:30:12.123456Z", "device": "sensor-1",
                 "publisher": "sensor-1"}]})],
    )
    def get(self, request: Request, tenant: str) -> Response:
        topic_filter = topic_filter_of(request, required=False)
        rows = retained_under(self.tenant, topic_filter)
        paginator = TopicPagination()
        topics = paginator.topics_page(rows.values_list("topic", flat=True),
                                       lambda topic: matches(topic_filter, topic), request)
        found = {row.topic: row for row in rows.filter(topic__in=topics).select_related("publisher")}
        # A row cleared between the two queries is simply left out of the page.
        results = [RetainedMessageSerializer(found[topic]).data for topic in topics if topic in found]
        return Response(paginator.get_paginated_response_data(results))

    @extend_schema(
        summary="Clear retained messages", tags=["retained"], operation_id="tenants_retained_clear",
        description="Clears one topic, or every topic a wildcard filter matches, through the running broker: it "
                    "forgets them at once and its write-behind deletes the rows within about a second (when the "
                    "broker is down, on its next start). Audited. `cleared` counts the matching messages the "
                    "database held when the request came; the broker may hold a few newer ones it clears too.",
        parameters=[OpenApiParameter("filter", str, required=True, description=_FILTER_RULES,
                                     examples=[OpenApiExample("One topic", value="devices/sensor-1/state"),
                                               OpenApiExample("A subtree", value="devices/sensor-1/#")])],
        responses={202: ClearedSerializer},
        examples=[OpenApiExample("Cleared", response_only=True, value={"cleared": 3}, status_codes=["202"])],
    )
    def delete(self, request: Request, tenant: str) -> Response:
        topic_filter = topic_filter_of(request, required=True)
        topics = retained_under(self.tenant, topic_filter).values_list("topic", flat=True)
        count = sum(1 for topic in topics.iterator(chunk_size=2000) if matches(topic_filter, topic))
        clear_retained(self.tenant, topic_filter, actor=self.actor)
        return Response({"cleared": count}, status=status.HTTP_202_ACCEPTED)
