"""Times a client sends, made safe to query with.

Python accepts UTC offsets up to ±23:59 and any year from 1 to 9999; PostgreSQL refuses an
offset beyond ±15:59 ("time zone displacement out of range") and a moment that lands outside
Python's range once moved to UTC cannot be represented at all. Every filter and cursor that
takes a time from a request passes it through `as_utc`, so such a value is a 400, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms


def as_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise forms.ValidationError("This time is out of range once converted to UTC.",
                                    code="invalid") from None


class UtcDateTimeField(forms.DateTimeField):
    def clean(self, value: object) -> datetime | None:
        cleaned = super().clean(value)
        return None if cleaned is None else as_utc(cleaned)
