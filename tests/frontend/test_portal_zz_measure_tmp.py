from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from django.test import Client

from devices.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_measure(alice: Any, acme: Any) -> None:
    AuditEvent.objects.bulk_create([AuditEvent(tenant=acme, actor_kind="user", actor_label="alice",
                                               action="device.update", target_type="device",
                                               target_repr=f"acme/d-{i}", after={"n": i}) for i in range(100_000)],
                                   batch_size=5000)
    client = Client()
    client.force_login(alice)
    tracemalloc.start()
    t = time.monotonic()
    response = client.get("/portal/t/acme/audit/export.csv")
    size = sum(len(chunk) for chunk in response.streaming_content)
    took = time.monotonic() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t = time.monotonic()
    page = client.get("/portal/t/acme/audit/?page=2000")
    print(f"\nexport: {size/1e6:.1f} MB in {took:.2f}s, peak python memory {peak/1e6:.1f} MB; "
          f"page 2000 in {time.monotonic()-t:.3f}s ({page.status_code})")
