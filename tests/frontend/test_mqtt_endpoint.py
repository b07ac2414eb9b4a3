"""The parts of the /mqtt endpoint that need no running broker: packet boundaries in a relayed
stream, the exact Origin check, who a session may act as, and the per-user counters.
(The endpoint end to end, with daphne and the broker: tests/broker/integration/test_platform_wss*.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import update_session_auth_hash
from django.test import Client, RequestFactory

from broker.mqtt import Connect, ProtocolError, Publish, ReasonCode, Subscribe, Subscription, encode
from devices.validators import is_valid_device_name
from frontend.mqtt import access, limits
from frontend.mqtt.consumer import forwarded_client_id
from frontend.mqtt.origin import configured_origins, normalize_origin
from frontend.mqtt.walker import PacketWalker, first_packet_end

STREAM = b"".join(encode(p, 5) for p in (
    Publish("a/b", b"x" * 10, qos=0),
    Subscribe(1, [Subscription("a/#", 1)]),
    Publish("a/c", b"y" * 300, qos=1, packet_id=2),  # a two-byte remaining length
    Publish("a/d", b"", qos=0),
))


# Packet boundaries -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_the_walker_counts_publishes_however_the_stream_is_split(size: int) -> None:
    walker = PacketWalker()
    counted = sum(walker.feed(STREAM[i:i + size]) for i in range(0, len(STREAM), size))
    assert (counted, walker.packets, walker.at_boundary) == (3, 4, True)


def test_the_walker_knows_when_it_stands_inside_a_packet() -> None:
    walker = PacketWalker()
    walker.feed(STREAM[:5])
    assert not walker.at_boundary


def test_the_walker_refuses_a_packet_over_the_limit_from_its_length_alone() -> None:
    walker = PacketWalker(max_packet_size=100)
    header = encode(Publish("a/b", b"x" * 200), 5)[:3]  # type byte and a two-byte length
    with pytest.raises(ProtocolError) as refused:
        walker.feed(header)
    assert refused.value.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_the_walker_lets_a_packet_of_exactly_the_limit_through() -> None:
    packet = encode(Publish("a/b", b"x" * 200), 5)
    assert PacketWalker(max_packet_size=len(packet)).feed(packet) == 1


def test_the_walker_refuses_a_length_of_five_bytes() -> None:
    with pytest.raises(ProtocolError) as refused:
        PacketWalker().feed(b"\x30\xff\xff\xff\xff\x01")
    assert refused.value.reason_code == ReasonCode.MALFORMED_PACKET


def test_the_first_packet_is_waited_for_until_complete() -> None:
    connect = encode(Connect(protocol_level=5, client_id="c", username="acme"), 5)
    assert [first_packet_end(connect[:n], 1024) for n in (0, 1, len(connect) - 1)] == [None] * 3
    assert first_packet_end(connect + b"\xc0\x00", 1024) == len(connect)


def test_a_first_packet_announcing_too_much_is_refused_before_it_arrives() -> None:
    with pytest.raises(ProtocolError) as refused:
        first_packet_end(b"\x10\xff\xff\x7f", 65536)
    assert refused.value.reason_code == ReasonCode.PACKET_TOO_LARGE


# Origins ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("https://Roost.Example.com", "https://roost.example.com"),
    ("https://roost.example.com:443", "https://roost.example.com"),
    ("http://localhost:8000", "http://localhost:8000"),
    ("http://[::1]:8000", "http://[::1]:8000"),
    ("https://roost.example.com/some/path", "https://roost.example.com"),
    ("null", None),
    ("", None),
    ("ftp://roost.example.com", None),
    ("https://*.example.com", None),
    ("http://localhost:99999", None),
])
def test_origins_are_compared_by_scheme_host_and_port(value: str, expected: str | None) -> None:
    assert normalize_origin(value) == expected


def test_the_configured_origins_are_the_public_url_and_the_trusted_origins(settings: Any) -> None:
    settings.ROOST_PUBLIC_URL = "https://roost.example.com"
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example.com:8443", "https://*.example.com"]
    assert configured_origins() == {"https://roost.example.com", "https://admin.example.com:8443"}


# Client ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", ["thermo", "mqttjs_1234abcd", "a:b.c-d_e"])
def test_a_browsers_client_id_can_never_be_a_device_name(client_id: str) -> None:
    assert is_valid_device_name(client_id)
    assert not is_valid_device_name(forwarded_client_id(7, client_id))


def test_an_empty_client_id_is_left_for_the_broker_to_assign() -> None:
    assert forwarded_client_id(7, "") == ""


# Who a session may act as ----------------------------------------------------------------------


def _session_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.session.session_key)


@pytest.mark.django_db
def test_a_member_gets_their_role_in_the_tenant_they_name(alice: Any, bob: Any) -> None:
    grant = access.grant_for(bob, _session_of(bob), "acme")
    assert isinstance(grant, access.Grant)
    assert (grant.tenant, grant.role, grant.username) == ("acme", "viewer", "bob")


@pytest.mark.django_db
@pytest.mark.parametrize("tenant", ["globex", "no-such-tenant"])
def test_a_tenant_of_others_and_a_missing_one_are_refused_alike(bob: Any, charlie: Any, tenant: str) -> None:
    assert access.grant_for(bob, _session_of(bob), tenant) == access.NOT_A_MEMBER


@pytest.mark.django_db
def test_an_empty_tenant_name_picks_the_only_membership(alice: Any) -> None:
    grant = access.grant_for(alice, _session_of(alice), "")
    assert isinstance(grant, access.Grant) and (grant.tenant, grant.role) == ("acme", "owner")


@pytest.mark.django_db
def test_an_empty_tenant_name_is_refused_for_a_member_of_several(alice: Any, globex: Any) -> None:
    from devices.services import add_member

    add_member(globex, alice, "viewer")
    assert access.grant_for(alice, _session_of(alice), None) == access.NAME_THE_TENANT


@pytest.mark.django_db
def test_platform_staff_act_as_admin_in_any_tenant(acme: Any, django_user_model: Any) -> None:
    staff = django_user_model.objects.create_user("ops", password="ops-password-1", is_staff=True)
    grant = access.grant_for(staff, _session_of(staff), "acme")
    assert isinstance(grant, access.Grant) and grant.role == "admin"


@pytest.mark.django_db
def test_a_disabled_tenant_is_refused(alice: Any, acme: Any) -> None:
    from devices.services import set_tenant_enabled

    set_tenant_enabled(acme, False)
    assert access.grant_for(alice, _session_of(alice), "acme") == access.NOT_A_MEMBER


@pytest.mark.django_db
def test_without_a_session_nobody_is_granted_anything(alice: Any, bob: Any) -> None:
    from django.contrib.auth.models import AnonymousUser

    assert access.grant_for(AnonymousUser(), None, "acme") == access.NO_SESSION
    assert access.grant_for(alice, _session_of(bob), "acme") == access.NO_SESSION  # someone else's


@pytest.fixture
def granted(alice: Any, bob: Any) -> tuple[access.Grant, str]:
    session = _session_of(bob)
    grant = access.grant_for(bob, session, "acme")
    assert isinstance(grant, access.Grant)
    return grant, session


@pytest.mark.django_db
def test_a_grant_holds_while_nothing_changes(granted: Any) -> None:
    assert access.still_valid(granted[0]) is None


@pytest.mark.django_db
def test_a_grant_ends_when_its_session_is_gone(granted: Any) -> None:
    access.session_store(granted[1]).delete()
    assert access.still_valid(granted[0]) == access.LOGGED_OUT


@pytest.mark.django_db
def test_a_grant_ends_when_the_password_changes(granted: Any, bob: Any) -> None:
    bob.set_password("a-new-password-2")
    bob.save()
    assert access.still_valid(granted[0]) == access.PASSWORD_CHANGED


@pytest.mark.django_db
def test_a_grant_ends_when_its_own_session_changed_the_password(granted: Any, bob: Any) -> None:
    """The tab that changed the password stays signed in under a new session key (Django cycles
    it); its socket ends and reconnects with the new cookie."""
    request = RequestFactory().get("/")
    request.session = access.session_store(granted[1])
    request.user = bob
    bob.set_password("a-new-password-2")
    bob.save()
    update_session_auth_hash(request, bob)
    assert access.still_valid(granted[0]) is not None


@pytest.mark.django_db
def test_a_grant_ends_when_the_user_is_deactivated(granted: Any, bob: Any) -> None:
    bob.is_active = False
    bob.save()
    assert access.still_valid(granted[0]) == access.DEACTIVATED


@pytest.mark.django_db
def test_a_grant_ends_when_the_membership_is_removed_or_changed(granted: Any, bob: Any, acme: Any) -> None:
    from devices.models import Membership
    from devices.services import change_member_role, remove_member

    membership = Membership.objects.get(user=bob, tenant=acme)
    change_member_role(membership, "operator")
    assert access.still_valid(granted[0]) == access.ROLE_CHANGED
    remove_member(membership)
    assert access.still_valid(granted[0]) == access.ROLE_CHANGED


# Per-user counters -----------------------------------------------------------------------------


def test_a_user_gets_as_many_connection_slots_as_the_limit() -> None:
    slots = [limits.claim_slot(1, 2, owner) for owner in ("a", "b", "c")]
    assert slots[0] and slots[1] and slots[2] is None
    assert limits.claim_slot(2, 2, "other user") is not None


def test_a_released_slot_is_free_again_and_only_its_owner_releases_it() -> None:
    first = limits.claim_slot(1, 1, "a")
    assert first is not None
    limits.release_slot(first, "somebody else")
    assert limits.claim_slot(1, 1, "b") is None
    limits.release_slot(first, "a")
    assert limits.claim_slot(1, 1, "b") == first


def test_renewing_keeps_a_slot_and_recovers_a_lost_one() -> None:
    from django.core.cache import cache

    slot = limits.claim_slot(1, 2, "a")
    assert slot is not None and limits.renew_slot(slot, 1, 2, "a") == slot
    cache.delete(slot)  # the lease ran out while the process stalled
    assert limits.renew_slot(slot, 1, 2, "a") is not None


def test_the_shared_publish_counter_trips_over_rate_times_the_window() -> None:
    now = 1000.0 * limits.RATE_WINDOW
    budget = 5 * limits.RATE_WINDOW
    assert limits.report_publishes(1, budget, 5, now)
    assert not limits.report_publishes(1, 1, 5, now + 1)
    assert limits.report_publishes(1, budget, 5, now + limits.RATE_WINDOW)  # the next window


def test_the_token_bucket_allows_a_second_of_burst_then_the_rate() -> None:
    bucket = limits.TokenBucket(10, now=0.0)
    assert bucket.take(10, 0.0)
    assert not bucket.take(1, 0.0)
    bucket = limits.TokenBucket(10, now=0.0)
    assert all(bucket.take(1, t / 10) for t in range(1, 100))
