"""The audit log page: filters, pagination newest first, and the CSV export of the filtered rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from devices.apikeys import create_api_key
from devices.audit import Actor
from devices.models import AuditEvent
from devices.services import create_device

pytestmark = pytest.mark.django_db

AUDIT = "/portal/t/acme/audit/"
EXPORT = AUDIT + "export.csv"



def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trail(acme: Any, globex: Any, alice: Any) -> dict[str, Any]:
    AuditEvent.objects.all().delete()  # the tenants' own creation events are not what these tests count
    create_device(acme, "by-alice", actor=Actor.for_user(alice))
    create_api_key(acme, role="viewer", name="ci", actor=Actor.for_user(alice))
    create_device(acme, "by-key", actor=Actor.api_key("factory"))
    create_device(globex, "foreign", actor=Actor.system())
    old = AuditEvent.objects.get(target_repr__endswith="by-alice")
    AuditEvent.objects.filter(pk=old.pk).update(created=datetime(2020, 1, 1, 12, tzinfo=UTC))
    return {"old": old}


def _targets(response: Any) -> list[str]:
    return [e.target_repr for e in response.context["page"]]


def test_the_audit_log_lists_the_tenants_events_newest_first(alice: Any, trail: Any) -> None:
    response = _client(alice).get(AUDIT)
    assert response.status_code == 200
    events = list(response.context["page"])
    assert events and all(e.tenant.slug == "acme" for e in events)
    assert [e.created for e in events] == sorted((e.created for e in events), reverse=True)
    assert events[-1].pk == trail["old"].pk
    assert "foreign" not in response.content.decode()


def test_the_audit_log_filters_by_actor_action_target_and_time(alice: Any, trail: Any) -> None:
    client = _client(alice)
    assert all("factory" in e.actor_label for e in client.get(AUDIT, {"actor": "factory"}).context["page"])
    assert {e.action for e in client.get(AUDIT, {"action": "device.create"}).context["page"]} == {"device.create"}
    keys = client.get(AUDIT, {"target_type": "apikey"}).context["page"]
    assert [e.target_type for e in keys] == ["apikey"]
    assert _targets(client.get(AUDIT, {"until": "2021-01-01T00:00"})) == [trail["old"].target_repr]
    assert trail["old"].target_repr not in _targets(client.get(AUDIT, {"since": "2021-01-01"}))


def test_a_time_with_a_far_offset_filters_and_one_out_of_range_is_a_field_error(alice: Any, trail: Any) -> None:
    client = _client(alice)
    assert _targets(client.get(AUDIT, {"until": "2020-01-01T00:00-17:47"})) == [trail["old"].target_repr]
    response = client.get(AUDIT, {"since": "0001-01-01T00:00+05:00"})
    assert response.status_code == 200 and "since" in response.context["filter"].form.errors


def test_a_bad_filter_is_reported_at_its_field_and_lists_nothing(alice: Any, trail: Any) -> None:
    response = _client(alice).get(AUDIT, {"since": "yesterday-ish", "action": "no.such"})
    assert response.status_code == 200
    errors = response.context["filter"].form.errors
    assert "since" in errors and "action" in errors
    assert list(response.context["page"]) == []


def test_the_audit_log_is_paginated(alice: Any, acme: Any, trail: Any) -> None:
    for n in range(30):
        create_device(acme, f"bulk-{n}")
    client = _client(alice)
    first, second = client.get(AUDIT), client.get(AUDIT, {"page": "2"})
    assert len(first.context["page"]) == 25 and first.context["page"].has_next()
    assert not {e.pk for e in first.context["page"]} & {e.pk for e in second.context["page"]}


def test_the_csv_export_streams_every_filtered_row(alice: Any, acme: Any, trail: Any) -> None:
    for n in range(30):
        create_device(acme, f"bulk-{n}")
    response = _client(alice).get(EXPORT, {"action": "device.create"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-acme-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = AuditEvent.objects.filter(tenant=acme, action="device.create").count()
    assert len(rows) == expected == 32
    assert {r["action"] for r in rows} == {"device.create"}
    assert rows[0]["time"] > rows[-1]["time"]
    assert not any("foreign" in r["target"] for r in rows)


def test_the_csv_export_defuses_spreadsheet_formulas(alice: Any, acme: Any) -> None:
    AuditEvent.objects.create(tenant=acme, actor_kind="api_key", actor_label="=HYPERLINK(1)", action="x.y",
                              target_type="device", target_repr="+bad")
    response = _client(alice).get(EXPORT, {"action": "x.y"})
    row = next(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert (row["actor"], row["target"]) == ("'=HYPERLINK(1)", "'+bad")


def test_a_bad_filter_exports_nothing(alice: Any, trail: Any) -> None:
    response = _client(alice).get(EXPORT, {"until": "not a time"})
    assert response.status_code == 400 and "until" in response.context["filter"].form.errors


def test_htmx_gets_only_the_table(alice: Any, trail: Any) -> None:
    body = _client(alice).get(AUDIT, {"actor": "factory"}, headers={"HX-Request": "true"}).content.decode()
    assert body.startswith('<div id="audit-table">') and "<html" not in body
    assert 'href="/portal/t/acme/audit/export.csv?actor=factory"' in body



def test_the_overview_links_the_audit_log_for_admins_only(alice: Any, bob: Any, acme: Any) -> None:
    assert f'href="{AUDIT}"' in _client(alice).get("/portal/t/acme/").content.decode()
    assert f'href="{AUDIT}"' not in _client(bob).get("/portal/t/acme/").content.decode()
