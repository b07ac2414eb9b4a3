"""One error shape for every 4xx the API gives, whichever layer refused the request; no
500 for bad input; the optional trailing slash; body limits; throttling per key."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/tenants/acme/api-keys/"


@pytest.fixture
def admin(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "admin", name="admin"))


def assert_error(response: Any, status: int, code: str | None = None, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "field", "errors"}
    assert isinstance(body["message"], str) and body["message"]
    assert body["errors"][0] == {"code": body["code"], "message": body["message"], "field": body["field"]}
    if code is not None:
        assert body["code"] == code
    assert body["field"] == field
    return body


def post_raw(client: Any, body: bytes | str, content_type: str = "application/json", **extra: Any) -> Any:
    return client.generic("POST", KEYS, body, content_type=content_type, **extra)


# 400 ------------------------------------------------------------------------------------------


def test_a_validation_error_names_every_field_at_fault(admin: Any) -> None:
    body = assert_error(admin.post(KEYS, {"role": "boss", "expires_days": "soon"}), 400, field="role")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {("role", "invalid_choice"), ("expires_days", "invalid")}


def test_malformed_json_is_a_400_parse_error(admin: Any) -> None:
    assert_error(post_raw(admin, "{bad"), 400, "parse_error")


def test_a_body_that_is_not_utf8_is_a_400_parse_error(admin: Any) -> None:
    assert_error(post_raw(admin, b"\xff\xfe{\x00}"), 400, "parse_error")


def test_a_json_array_where_an_object_belongs_is_a_400(admin: Any) -> None:
    assert_error(post_raw(admin, "[1, 2]"), 400, "invalid")


def test_values_of_the_wrong_type_are_a_400_per_field(admin: Any) -> None:
    body = assert_error(post_raw(admin, json.dumps({"role": ["admin"], "name": {"a": 1}})), 400, field="name")
    assert {e["field"] for e in body["errors"]} == {"name", "role"}


@pytest.mark.parametrize("number", ["1e400", "9" * 5000, "-1", "1.5", "true"])
def test_absurd_numbers_are_a_400_not_a_500(admin: Any, number: str) -> None:
    response = post_raw(admin, '{"role": "viewer", "expires_days": ' + number + "}")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"code", "message", "field", "errors"}


def test_a_header_content_length_that_is_not_a_number_is_a_400(admin: Any) -> None:
    assert_error(post_raw(admin, "{}", CONTENT_LENGTH="ten"), 400, "invalid_content_length")


# Pagination, ordering and filters ---------------------------------------------------------------


def test_a_made_up_cursor_is_a_400_that_names_the_cursor(admin: Any) -> None:
    for cursor in ("zzz", "%%%", base64.b64encode(b"p=not-a-date").decode(), base64.b64encode(b"o=x").decode(),
                   base64.b64encode(b"p=a\x00b").decode()):
        assert_error(admin.get(KEYS, {"cursor": cursor}), 400, "invalid_cursor", "cursor")


def _cursor_with_time(admin: Any, moment: str) -> str:
    """A real `next` cursor of the keys list with its `created` value replaced by `moment`."""
    nxt = admin.get(KEYS, {"limit": 1}).json()["next"]
    raw = nxt.partition("cursor=")[2].partition("&")[0]
    token = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    token["p"][0] = moment
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def test_a_cursor_time_is_moved_to_utc_and_one_out_of_range_is_a_400(admin: Any, acme: Any,
                                                                     make_api_key: Any) -> None:
    make_api_key(acme, "viewer", name="second")
    assert admin.get(KEYS, {"limit": 1, "cursor": _cursor_with_time(admin, "9000-05-30T05:07:46-17:47")}
                     ).status_code == 200
    assert_error(admin.get(KEYS, {"limit": 1, "cursor": _cursor_with_time(admin, "0001-01-01T00:00:00+05:00")}),
                 400, "invalid_cursor", "cursor")


@pytest.mark.parametrize("limit", ["0", "-3", "abc", "1001", "1.5", "١"])
def test_a_limit_outside_1_to_1000_is_a_400(admin: Any, limit: str) -> None:
    assert_error(admin.get(KEYS, {"limit": limit}), 400, "invalid_limit", "limit")


def test_an_unknown_ordering_is_a_400_that_lists_the_valid_ones(admin: Any) -> None:
    body = assert_error(admin.get(KEYS, {"ordering": "key_hash"}), 400, "invalid_ordering", "ordering")
    assert "created" in body["message"] and "name" in body["message"]


def test_pages_follow_their_next_links_to_the_end_in_the_asked_order(
        acme: Any, admin: Any, make_api_key: Any) -> None:
    for name in ("b", "a", "c", "a"):  # names need not be unique: the cursor still pages right
        make_api_key(acme, "viewer", name=name)
    seen: list[str] = []
    url: str | None = KEYS + "?limit=2&ordering=name"
    while url:
        page = admin.get(url).json()
        seen += [k["name"] for k in page["results"]]
        assert len(page["results"]) <= 2
        url = page["next"]
    assert seen == ["a", "a", "admin", "b", "c"]


def test_a_previous_link_leads_back(acme: Any, admin: Any, make_api_key: Any) -> None:
    for name in ("k1", "k2", "k3"):
        make_api_key(acme, "viewer", name=name)
    first = admin.get(KEYS + "?limit=2&ordering=-name").json()
    second = admin.get(first["next"]).json()
    back = admin.get(second["previous"]).json()
    assert [k["name"] for k in back["results"]] == [k["name"] for k in first["results"]]


# 401, 403, 404, 405, 406, 413, 415 --------------------------------------------------------------


def test_no_credentials_is_a_401(api: Any, acme: Any) -> None:
    assert_error(api().get(KEYS), 401, "not_authenticated")


def test_too_low_a_role_is_a_403_that_says_which_role(acme: Any, make_api_key: Any, api: Any) -> None:
    body = assert_error(api(make_api_key(acme, "operator")).get(KEYS), 403, "role_required")
    assert "admin" in body["message"]


def test_an_unknown_object_is_a_404(admin: Any) -> None:
    assert_error(admin.get(KEYS + "rk_000000000000/"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/tenants/acme/nothing/", "/api/v1/tenants/acme/api-keys/rk_000000000000/x/",
                                  "/api/v1/tenants/acme/api-keys/not-a-prefix/", "/api/nothing"])
def test_an_unknown_api_route_is_a_json_404_not_an_html_page(admin: Any, path: str) -> None:
    body = assert_error(admin.get(path), 404, "not_found")
    assert "/api/v1/" in body["message"]


def test_a_page_outside_the_api_keeps_djangos_own_404(client: Any) -> None:
    assert not client.get("/no-such-page/")["Content-Type"].startswith("application/json")


def test_an_unsupported_method_is_a_405_with_allow(admin: Any) -> None:
    response = admin.put(KEYS, {})
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_an_unsatisfiable_accept_header_is_a_406(admin: Any) -> None:
    assert_error(admin.get(KEYS, HTTP_ACCEPT="application/xml"), 406, "not_acceptable")


def test_a_body_over_the_limit_is_a_413(admin: Any) -> None:
    with override_settings(ROOST_API_MAX_BODY=2048):
        assert_error(admin.post(KEYS, {"role": "viewer", "name": "x" * 4000}), 413, "body_too_large")
        assert admin.post(KEYS, {"role": "viewer", "name": "small"}).status_code == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_json_is_a_415(admin: Any, content_type: str) -> None:
    assert_error(post_raw(admin, "role=viewer", content_type), 415, "unsupported_media_type")


# The trailing slash -----------------------------------------------------------------------------


def test_paths_work_with_and_without_the_trailing_slash(admin: Any) -> None:
    assert admin.get(KEYS.rstrip("/")).status_code == 200
    created = admin.post(KEYS.rstrip("/"), {"role": "viewer"})
    assert created.status_code == 201
    detail = KEYS + created.json()["prefix"]
    assert admin.get(detail).status_code == admin.get(detail + "/").status_code == 200
    assert admin.delete(detail).status_code == 204


# 429 ---------------------------------------------------------------------------------------------


@override_settings(ROOST_API_RATE="3/min")
def test_a_key_over_its_rate_gets_a_429_with_retry_after(admin: Any) -> None:
    for _ in range(3):
        assert admin.get("/api/v1/").status_code == 200
    response = admin.get("/api/v1/")
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60


@override_settings(ROOST_API_RATE="3/min")
def test_the_rate_is_counted_per_key(acme: Any, admin: Any, make_api_key: Any, api: Any) -> None:
    for _ in range(4):
        admin.get("/api/v1/")
    assert admin.get("/api/v1/").status_code == 429
    assert api(make_api_key(acme, "viewer")).get("/api/v1/").status_code == 200


@pytest.mark.redis
@override_settings(ROOST_API_RATE="2/min")
def test_throttle_counts_live_in_redis_when_redis_url_is_set(acme: Any, make_api_key: Any, api: Any) -> None:
    import redis
    from django.core.cache import cache

    from devices.apikeys import split_key
    from devices.models import ApiKey

    key = make_api_key(acme, "viewer")
    pk = ApiKey.objects.get(prefix=split_key(key)[0]).pk  # type: ignore[index]
    client = api(key)
    client.get("/api/v1/")
    client.get("/api/v1/")
    assert client.get("/api/v1/").status_code == 429
    stored = cache.make_key(f"throttle_api_key:{pk}")
    history = redis.Redis.from_url(os.environ["REDIS_URL"]).get(stored)
    assert history is not None, f"no {stored} in Redis"
    # A process with no memory of its own (the cache emptied locally means nothing with Redis)
    # still sees the count: drop Django's connection pool and ask again.
    cache.close()
    assert client.get("/api/v1/").status_code == 429


@pytest.mark.parametrize(("body", "field"), [
    ('{"role": "viewer", "name": "a\\u0000b"}', "name"),
    ('{"role": "viewer", "name": "\\ud800"}', "name"),
    ('{"role": "viewer", "extra": {"k": ["ok", "nul\\u0000"]}}', "extra.k[1]"),
    ('{"role": "viewer", "extra": {"\\u0000": 1}}', "extra"),
])
def test_text_no_database_can_store_is_a_400_that_names_where_it_is(admin: Any, body: str, field: str) -> None:
    assert_error(post_raw(admin, body), 400, "invalid_characters", field)


def test_json_nested_beyond_reason_is_a_400_not_a_500(admin: Any) -> None:
    assert_error(post_raw(admin, "[" * 100_000 + "]" * 100_000), 400, "too_deep")
    assert_error(post_raw(admin, '{"role": "viewer", "x": ' + "[" * 100 + "]" * 100 + "}"), 400, "too_deep", "x" + "[0]" * 64)


def test_a_nul_character_in_a_path_is_a_404_and_in_a_query_a_400(admin: Any) -> None:
    body = assert_error(admin.get("/api/v1/tenants/acme/devices/a%00b/"), 404, "not_found")
    assert "NUL" in body["message"]
    assert_error(admin.get(KEYS + "?role=a%00b"), 400, "invalid_characters", "role")


def test_a_unique_constraint_met_by_a_concurrent_create_is_a_409_not_a_500(acme: Any) -> None:
    from django.db import IntegrityError, transaction

    from devices.apikeys import create_api_key
    from devices.models import ApiKey
    from roost.api.errors import exception_handler

    first = create_api_key(acme, role="viewer").api_key
    try:
        with transaction.atomic():  # what the loser of two simultaneous creates runs into
            ApiKey.objects.create(tenant=acme, name="twin", role="viewer", prefix=first.prefix, key_hash="0" * 64)
    except IntegrityError as exc:
        response = exception_handler(exc, {})
    assert response is not None and response.status_code == 409
    assert response.data["code"] == "conflict"
    assert exception_handler(RuntimeError("a bug"), {}) is None  # a real server error stays a 500


# The shared cursor pagination (lists that do not bring their own, such as acl-rules) -------------

RULES = "/api/v1/tenants/acme/acl-rules/"


def test_the_shared_pagination_refuses_a_made_up_cursor_with_a_400(admin: Any) -> None:
    for cursor in ("zzz!", "%%%", base64.b64encode(b"p=not-a-number").decode(), base64.b64encode(b"o=x").decode(),
                   base64.b64encode(b"p=1\x002").decode()):
        assert_error(admin.get(RULES, {"cursor": cursor, "ordering": "id"}), 400, "invalid_cursor", "cursor")


def test_the_shared_pagination_pages_every_row_once(admin: Any) -> None:
    expected = [r["id"] for r in admin.get(RULES, {"limit": 1000, "ordering": "id"}).json()["results"]]
    assert len(expected) >= 3, "the tenant starts with its default rules"
    seen: list[int] = []
    url: str | None = RULES + "?limit=2&ordering=id"
    while url:
        page = admin.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert seen == expected
