"""Portal pages, mounted at /portal/. A device's pages live under devices/NAME/; the list's own
pages under devices/-/, a segment no device name can take (names start with a letter or digit)."""

from __future__ import annotations

from django.urls import path

from .views import (
    audit,
    certificates,
    device,
    devices,
    home,
    imports,
    keys,
    live,
    members,
    overview,
    retained,
    rules,
    tokens,
)

app_name = "frontend"
urlpatterns = [
    path("", home.home, name="home"),
    path("t/<slug:slug>/", overview.overview, name="overview"),
    path("t/<slug:slug>/devices/", devices.device_list, name="devices"),
    path("t/<slug:slug>/devices/-/new/", devices.device_create, name="device-create"),
    path("t/<slug:slug>/devices/-/bulk/", devices.device_bulk, name="device-bulk"),
    path("t/<slug:slug>/devices/-/import/", imports.import_start, name="import"),
    path("t/<slug:slug>/devices/-/import/<uuid:job_id>/", imports.import_job, name="import-job"),
    path("t/<slug:slug>/devices/-/import/<uuid:job_id>/progress/", imports.import_progress, name="import-progress"),
    path("t/<slug:slug>/devices/-/import/<uuid:job_id>/bundle/", imports.import_bundle, name="import-bundle"),
    path("t/<slug:slug>/devices/<str:name>/", device.device_detail, name="device"),
    path("t/<slug:slug>/devices/<str:name>/kick/", device.device_kick, name="device-kick"),
    path("t/<slug:slug>/devices/<str:name>/delete/", device.device_delete, name="device-delete"),
    path("t/<slug:slug>/devices/<str:name>/certificates/", device.certificate_issue, name="certificate-issue"),
    path("t/<slug:slug>/devices/<str:name>/certificates/<str:serial>/revoke/", device.certificate_revoke,
         name="certificate-revoke"),
    path("t/<slug:slug>/devices/<str:name>/certificates/<str:serial>.pem", device.certificate_pem,
         name="certificate-pem"),
    path("t/<slug:slug>/devices/<str:name>/issued/<str:token>/", devices.device_issued, name="device-issued"),
    path("t/<slug:slug>/devices/<str:name>/issued/<str:token>/<str:kind>/", devices.device_bundle,
         name="device-bundle"),
    path("t/<slug:slug>/devices/<str:name>/retained/", retained.device_retained, name="device-retained"),
    path("t/<slug:slug>/certificates/", certificates.certificate_list, name="certificates"),
    path("t/<slug:slug>/certificates/<str:serial>/revoke/", certificates.certificate_revoke,
         name="certificates-revoke"),
    path("t/<slug:slug>/api-keys/", keys.key_list, name="keys"),
    path("t/<slug:slug>/api-keys/<str:prefix>/revoke/", keys.key_revoke, name="key-revoke"),
    path("t/<slug:slug>/members/", members.member_list, name="members"),
    path("t/<slug:slug>/members/<str:username>/role/", members.member_role, name="member-role"),
    path("t/<slug:slug>/members/<str:username>/remove/", members.member_remove, name="member-remove"),
    path("t/<slug:slug>/rules/", rules.rule_list, name="rules"),
    path("t/<slug:slug>/rules/new/", rules.rule_create, name="rule-create"),
    path("t/<slug:slug>/rules/explain/", rules.rule_explain, name="rule-explain"),
    path("t/<slug:slug>/rules/<int:pk>/", rules.rule_edit, name="rule-edit"),
    path("t/<slug:slug>/rules/<int:pk>/delete/", rules.rule_delete, name="rule-delete"),
    path("t/<slug:slug>/enrollment-tokens/", tokens.token_list, name="tokens"),
    path("t/<slug:slug>/enrollment-tokens/<str:prefix>/revoke/", tokens.token_revoke, name="token-revoke"),
    path("t/<slug:slug>/audit/", audit.audit_list, name="audit"),
    path("t/<slug:slug>/audit/export.csv", audit.audit_export, name="audit-export"),
    path("t/<slug:slug>/explorer/", live.explorer, name="explorer"),
    path("t/<slug:slug>/topics/", retained.topic_tree, name="topic-tree"),
    path("t/<slug:slug>/retained/", retained.retained_detail, name="retained-detail"),
    path("t/<slug:slug>/retained/clear", retained.clear_retained_view, name="retained-clear"),
]
