"""The contract, readable: Swagger UI and ReDoc from installed static files only (no CDN),
the schema viewable in a browser, and a schema that documents the shared error shape and
the links a stateful client (or schemathesis) follows."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


class _References(HTMLParser):
    """Every URL a page makes the browser load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href", "spec-url"} and value:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_only_installed_static_files(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    urls = references(html)
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, "the page loads its UI script"
    for url in urls:
        assert url.startswith("/"), f"{url} is not on this server"
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), f"{url} is not an installed static file"
    assert not re.search(r"https?://", html), "no absolute URL (CDN, fonts, validator) in the page"


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_forbid_the_browser_any_other_origin(client: Any, path: str) -> None:
    policy = client.get(path)["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    for name in ("default-src", "script-src", "style-src", "img-src", "font-src", "connect-src"):
        sources = directives[name].split()
        assert "'self'" in sources
        assert not [s for s in sources if "." in s or s in {"*", "https:", "http:"}], directives[name]


def test_swagger_ui_is_told_not_to_call_the_online_validator(client: Any) -> None:
    html = client.get("/api/docs/").content.decode()
    assert '"validatorUrl": null' in html


def test_the_schema_is_a_readable_page_in_a_browser(client: Any) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what browsers send
    response = client.get("/api/schema/", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "attachment" not in response.get("Content-Disposition", "")
    page = response.content.decode()
    assert "openapi: 3.0.3" in page and "/api/v1/tenants/{tenant}/api-keys/" in page
    assert "<script" not in page
    assert 'href="/api/docs/"' in page and 'href="?format=json"' in page


def test_the_schema_is_plain_json_with_format_json(client: Any) -> None:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["openapi"].startswith("3.")


def test_tools_get_the_schema_as_yaml_by_default(client: Any) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="*/*")
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(response.content)["info"]["title"] == "Roost API"


@pytest.fixture
def schema(client: Any) -> dict[str, Any]:
    return json.loads(client.get("/api/schema/?format=json").content)


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()
            if method in {"get", "post", "put", "patch", "delete"}]


def test_every_operation_documents_its_refusals_in_the_shared_error_shape(schema: dict[str, Any]) -> None:
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "message", "field", "errors"]
    for path, method, op in operations(schema):
        for code in ("400", "401", "403", "406", "429"):
            content = op["responses"][code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (method, path, code)
        assert "Retry-After" in op["responses"]["429"]["headers"]
        if "{" in path:
            assert "404" in op["responses"], (method, path)


def test_every_operation_has_a_summary_and_a_tag_of_its_collection(schema: dict[str, Any]) -> None:
    for path, method, op in operations(schema):
        assert op.get("summary"), (method, path)
        if path.startswith("/api/v1/tenants/{tenant}/") and path != "/api/v1/tenants/{tenant}/":
            assert op["tags"] != ["tenants"], (method, path)


def test_the_api_is_documented_with_bearer_keys(schema: dict[str, Any]) -> None:
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A tenant API key (rk_…)."}


def test_bodies_are_documented_as_json(schema: dict[str, Any]) -> None:
    for path, method, op in operations(schema):
        if "requestBody" in op and path.endswith("/api-keys/"):
            assert list(op["requestBody"]["content"]) == ["application/json"], (method, path)


def test_a_create_links_to_what_can_be_done_with_the_created_object(schema: dict[str, Any]) -> None:
    created = schema["paths"]["/api/v1/tenants/{tenant}/api-keys/"]["post"]["responses"]["201"]
    links = created["links"]
    assert set(links) == {"tenants_api_keys_retrieve", "tenants_api_keys_destroy"}
    assert links["tenants_api_keys_retrieve"]["parameters"] == {
        "tenant": "$request.path.tenant", "prefix": "$response.body#/prefix"}


def test_a_list_links_to_the_read_of_its_first_result(schema: dict[str, Any]) -> None:
    listed = schema["paths"]["/api/v1/tenants/{tenant}/api-keys/"]["get"]["responses"]["200"]
    assert listed["links"]["tenants_api_keys_retrieve"]["parameters"]["prefix"] == "$response.body#/results/0/prefix"
    assert "tenants_api_keys_destroy" not in listed["links"]


def test_every_link_names_an_operation_that_exists(schema: dict[str, Any]) -> None:
    ids = {op["operationId"] for _, _, op in operations(schema)}
    for path, method, op in operations(schema):
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids, (method, path, link)


def test_lists_document_limit_cursor_and_ordering(schema: dict[str, Any]) -> None:
    params = {p["name"]: p for p in schema["paths"]["/api/v1/tenants/{tenant}/api-keys/"]["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert params["cursor"]["schema"]["type"] == "string"
    assert params["ordering"]["schema"]["enum"] == ["created", "-created", "name", "-name"]


def test_the_schema_is_valid_openapi(tmp_path: Any) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--file", str(tmp_path / "schema.yaml"))
    assert yaml.safe_load((tmp_path / "schema.yaml").read_text())["openapi"] == "3.0.3"


def test_a_list_never_links_to_changes_or_deletions(schema: dict[str, Any]) -> None:
    for path, method, op in operations(schema):
        if method != "get":
            continue
        ids = {other["operationId"]: m for _, m, other in operations(schema)}
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                assert ids[link["operationId"]] == "get", (path, link)


def test_links_fill_a_lookup_named_differently_below_the_collection_and_never_leave_the_tenant() -> None:
    from roost.api.schema import add_links

    def op(op_id: str, fields: tuple[str, ...] = ()) -> dict[str, Any]:
        body = {"type": "object", "properties": {f: {"type": "string"} for f in fields}}
        return {"operationId": op_id, "responses": {"201": {"content": {"application/json": {"schema": body}}}}}

    schema = {"paths": {
        "/t/": {"post": op("tenant_create", ("slug", "name"))},
        "/t/{slug}/": {"get": op("tenant_show")},
        "/t/{tenant}/d/": {"post": op("device_create", ("name",))},
        "/t/{tenant}/d/{name}/": {"get": op("device_show"), "delete": op("device_delete")},
        "/t/{tenant}/d/{device}/certs/": {"post": op("cert_issue")},
        "/t/{tenant}/other/{x}/": {"get": op("other")},
    }, "components": {"schemas": {}}}
    links = add_links(schema, None, None, True)["paths"]
    created = links["/t/{tenant}/d/"]["post"]["responses"]["201"]["links"]
    assert created["cert_issue"]["parameters"] == {"tenant": "$request.path.tenant", "device": "$response.body#/name"}
    assert created["device_delete"]["parameters"] == {"tenant": "$request.path.tenant", "name": "$response.body#/name"}
    assert "other" not in created
    assert set(links["/t/"]["post"]["responses"]["201"]["links"]) == {"tenant_show"}
