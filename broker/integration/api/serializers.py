"""What `retained/` shows and answers."""

from __future__ import annotations

import base64
from typing import Any

from rest_framework import serializers

from ..models import RetainedMessage

_DATETIME = serializers.DateTimeField()


class RetainedMessageSerializer(serializers.Serializer[RetainedMessage]):
    topic = serializers.CharField(help_text="The topic inside the tenant, as its clients see it.")
    payload = serializers.CharField(help_text="The payload: text when it is UTF-8, else base64 (see `encoding`).")
    encoding = serializers.ChoiceField(choices=["utf-8", "base64"], help_text="How `payload` is written.")
    qos = serializers.IntegerField(min_value=0, max_value=2)
    size = serializers.IntegerField(help_text="Payload size in bytes.")
    updated = serializers.DateTimeField(help_text="When the broker stored it.")
    device = serializers.CharField(allow_null=True, help_text="The device that published it, by name; null when "
                                                               "a service, a portal user or the broker did, or the "
                                                               "device was deleted since.")
    publisher = serializers.CharField(allow_blank=True, help_text="The client that published it as the broker knew "
                                                                  "it: a client id, or `roost` for the broker.")

    def to_representation(self, row: RetainedMessage) -> dict[str, Any]:
        data = bytes(row.payload)
        try:
            payload, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(data).decode("ascii"), "base64"
        return {"topic": row.topic, "payload": payload, "encoding": encoding, "qos": row.qos, "size": len(data),
                "updated": _DATETIME.to_representation(row.updated),
                "device": row.publisher.name if row.publisher_id is not None and row.publisher else None,
                "publisher": row.publisher_name}


class RetainedPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next page, or null after the last.")
    previous = serializers.URLField(allow_null=True, help_text="The page before, or null on the first.")
    results = RetainedMessageSerializer(many=True)


class ClearedSerializer(serializers.Serializer[Any]):
    cleared = serializers.IntegerField(min_value=0, help_text="How many retained messages matching the filter the "
                                                              "database held when the request came.")
