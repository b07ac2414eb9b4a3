"""Housekeeping for the registry."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .models import ChangeEvent

# The broker catches up from the outbox after downtime; a week covers any sane outage.
CHANGE_EVENT_RETENTION = timedelta(days=7)


@shared_task
def prune_change_events() -> int:
    cutoff = timezone.now() - CHANGE_EVENT_RETENTION
    deleted, _ = ChangeEvent.objects.filter(created__lt=cutoff).delete()
    return deleted
