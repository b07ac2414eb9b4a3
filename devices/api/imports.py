"""Bulk imports: `POST devices/import` queues a job; `jobs/` reports its progress and serves
its certificate bundle. Operators import and download bundles (they hold private keys);
viewers may follow the jobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse
from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from pki.api.renderers import ZIP, JsonErrorsMixin, PemZipRenderer
from roost.api.errors import ERROR_SCHEMA, bad_request, conflict, not_found, too_large, unavailable
from roost.api.views import TenantScopedMixin

from ..import_rows import CSV, JSON
from ..imports import bundle_file, submit_import
from ..models import ImportJob, ImportJobState, Role
from ..tasks import enqueue_import

JOB_ID_REGEX = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
TENANT_PREFIX = r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)"
_READ_SIZE = 256 * 1024
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
PHASES = ("parse", "devices", "certificates", "bundle", "total")


# Serializers ----------------------------------------------------------------------------------


class ImportRowErrorSerializer(serializers.Serializer[Any]):
    row = serializers.IntegerField(help_text="CSV: the row as a spreadsheet numbers it (the header is row 1, "
                                             "the first device row 2). JSON: the position in the list, from 1.")
    name = serializers.CharField(allow_blank=True, help_text="The row's device name as given (may be empty).")
    code = serializers.CharField(help_text="invalid_device_name, duplicate_row, unknown_group, invalid_attributes, "
                                           "invalid_tags, invalid_csr, public_key_in_use, …")
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The column at fault, when there is one.")


class ImportTimingsSerializer(serializers.Serializer[Any]):
    parse = serializers.FloatField(help_text="Seconds reading and checking rows (CSR signatures included).")
    devices = serializers.FloatField(help_text="Seconds writing devices.")
    certificates = serializers.FloatField(help_text="Seconds generating keys, signing and storing certificates.")
    bundle = serializers.FloatField(help_text="Seconds writing the zip bundle.")
    total = serializers.FloatField(help_text="Seconds since the job started running.")


class ImportJobSerializer(serializers.ModelSerializer[ImportJob]):
    id = serializers.UUIDField(read_only=True)
    url = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=ImportJobState.choices, read_only=True,
                                    help_text="pending (queued), running, done, or failed (see message).")
    format = serializers.CharField(source="input_format", read_only=True, help_text="csv or json.")
    file_name = serializers.CharField(source="input_name", read_only=True,
                                      help_text="The uploaded file's name (multipart), if any.")
    issue_certs = serializers.BooleanField(read_only=True,
                                           help_text="Whether new devices get certificates (and the job a bundle).")
    done = serializers.IntegerField(read_only=True,
                                    help_text="Rows handled so far, whatever their outcome; equals total at the end.")
    failed = serializers.IntegerField(read_only=True, help_text="Rows refused; the first 100 are in errors.")
    created = serializers.IntegerField(source="created_count", read_only=True, help_text="Devices created.")
    existing = serializers.IntegerField(source="existing_count", read_only=True,
                                        help_text="Rows naming a device that already existed (left as it was).")
    certificates = serializers.IntegerField(source="certificate_count", read_only=True,
                                            help_text="Certificates issued.")
    # A declared field: the serializer's metaclass takes it out of the class, so it does not
    # replace Serializer.errors as the stubs believe.
    errors = ImportRowErrorSerializer(many=True, read_only=True,  # type: ignore[assignment]
                                      help_text="The first 100 refused rows, in row order.")
    timings = serializers.SerializerMethodField()
    bundle = serializers.SerializerMethodField()
    created_by = serializers.CharField(read_only=True, help_text="Who submitted it, as the audit trail names them.")
    submitted = serializers.DateTimeField(source="created", read_only=True)
    started = serializers.DateTimeField(read_only=True, allow_null=True)
    finished = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = ImportJob
        fields = ["id", "url", "state", "format", "file_name", "issue_certs", "total", "done", "failed", "created",
                  "existing", "certificates", "errors", "message", "timings", "bundle", "created_by", "submitted",
                  "started", "finished"]
        read_only_fields = fields

    @extend_schema_field(ImportTimingsSerializer)
    def get_timings(self, job: ImportJob) -> dict[str, float]:
        return {name: float((job.timings or {}).get(name, 0.0)) for name in PHASES}

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, job: ImportJob) -> str:
        return reverse("v1:job-detail", kwargs={"tenant": job.tenant.slug, "id": str(job.pk)},
                       request=self.context.get("request"))

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True,
                          "description": "Where to download the zip of certificates once the job has one."})
    def get_bundle(self, job: ImportJob) -> str | None:
        if not job.has_bundle:
            return None
        return reverse("v1:job-bundle", kwargs={"tenant": job.tenant.slug, "id": str(job.pk)},
                       request=self.context.get("request"))


# A JSON import: rows are checked one by one by the job (a bad row is reported, not refused here).
JSON_ROWS_SCHEMA: dict[str, Any] = {
    "type": "array", "minItems": 1, "maxItems": 100_000,
    "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "description": "The device's name (MQTT client id)."},
        "display_name": {"type": "string"},
        "group": {"type": "string", "nullable": True, "description": "An existing group's name."},
        "tags": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "object", "additionalProperties": True},
        "csr": {"type": "string", "description": "A PEM CSR: with issue_certs, the certificate is issued for "
                                                 "its key (no key is generated)."},
    }},
}


class ImportUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="The CSV (.csv) or JSON (.json) file.")
    issue_certs = serializers.BooleanField(required=False, default=False)


# Parsers: the body is kept as bytes, read in pieces (Django's request.body would refuse
# anything over DATA_UPLOAD_MAX_MEMORY_SIZE), and parsed by the import service itself, so that
# each row's problems are reported with its number instead of failing the whole request.


@dataclass(frozen=True)
class Upload:
    data: bytes
    fmt: str
    filename: str = ""


class _RawParser(BaseParser):
    fmt = ""

    # DRF hands whatever parse() returns to the view as request.data; the stubs expect a mapping.
    def parse(self, stream: Any, media_type: str | None = None,  # type: ignore[override]
              parser_context: Mapping[str, Any] | None = None) -> Upload:
        limit = parser_context["view"].max_body_bytes if parser_context else settings.ROOST_IMPORT_MAX_BODY
        pieces, size = [], 0
        while stream is not None:
            piece = stream.read(_READ_SIZE)
            if not piece:
                break
            size += len(piece)
            if size > limit:
                raise too_large(f"The request body is larger than {limit} bytes.")
            pieces.append(piece)
        return Upload(b"".join(pieces), self.fmt)


class CsvUploadParser(_RawParser):
    media_type = "text/csv"
    fmt = CSV


class JsonUploadParser(_RawParser):
    media_type = "application/json"
    fmt = JSON


def _flag(value: str, field: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise bad_request(f"{field} must be true or false.", code="invalid", field=field)


_CSV_EXAMPLE = (
    "name,display_name,group,tags,attr.site,attr.floor\n"
    "sensor-001,Boiler room,line-3,pilot;th-2,north,3\n"
    "sensor-002,Roof,,,north,7\n"
)
_JOB_EXAMPLE = {
    "id": "0f6d3c8e-2b7a-4c1e-9f5d-3a2b1c0d9e8f",
    "url": "https://roost.example.com/api/v1/tenants/acme/jobs/0f6d3c8e-2b7a-4c1e-9f5d-3a2b1c0d9e8f/",
    "state": "done", "format": "csv", "file_name": "fleet.csv", "issue_certs": True, "total": 1000, "done": 1000,
    "failed": 1, "created": 990, "existing": 9, "certificates": 990,
    "errors": [{"row": 17, "name": "sensor 17", "code": "invalid_device_name",
                "message": "Invalid device name 'sensor 17': use 1 to 128 ASCII characters: letters, digits and "
                           ". _ : - ; the first one a letter or a digit.", "field": "name"}],
    "message": "",
    "timings": {"parse": 0.08, "devices": 0.61, "certificates": 1.9, "bundle": 0.12, "total": 2.8},
    "bundle": "https://roost.example.com/api/v1/tenants/acme/jobs/0f6d3c8e-2b7a-4c1e-9f5d-3a2b1c0d9e8f/bundle/",
    "created_by": "api-key:factory", "submitted": "2026-01-05T09:30:00Z", "started": "2026-01-05T09:30:01Z",
    "finished": "2026-01-05T09:30:04Z",
}
_IMPORT_DESCRIPTION = """Queues a bulk import and answers `202` with the job (`Location` points at it);
a worker runs it. Send the file as the body (`text/csv` or `application/json`) or as the
multipart field `file`, up to ROOST_IMPORT_MAX_BODY bytes (64 MiB) and ROOST_IMPORT_MAX_ROWS
rows (100,000).

**CSV**: a header naming the columns `name` (required), `display_name`, `group` (an existing
group: imports never create groups), `tags` (separated by `;`), `attributes` (a JSON object),
`attr.KEY` (one attribute per column) and `csr` (a PEM CSR in a quoted cell). Rows are numbered
as a spreadsheet shows them: the header is row 1. **JSON**: a list of objects with the same keys
(`tags` a list, `attributes` an object), numbered from 1.

A row naming an existing device is reported as existing and left alone, so the same file can
be sent again safely. Bad rows are reported with their row number in the job's `errors` and
never stop the others. With `issue_certs`, every new device gets a certificate (from its CSR,
or with a P-256 key generated here) and the job a zip bundle at `jobs/{id}/bundle`. A file
that cannot be read at all (not UTF-8, no `name` column, unknown columns, no rows, too many)
is refused with 400 before any job is made. Operator role."""


class DeviceImportView(TenantScopedMixin, APIView):
    write_role = Role.OPERATOR
    parser_classes = [CsvUploadParser, JsonUploadParser, MultiPartParser]

    # A property where the mixin has a plain attribute (mypy allows no such override): read per
    # request, so that a changed setting applies.
    @property
    def max_body_bytes(self) -> int:  # type: ignore[override]
        return int(settings.ROOST_IMPORT_MAX_BODY)

    @extend_schema(
        summary="Import devices in bulk (a job)", description=_IMPORT_DESCRIPTION,
        operation_id="devices_import",
        parameters=[OpenApiParameter("issue_certs", OpenApiTypes.BOOL, OpenApiParameter.QUERY, required=False,
                                     description="Issue a certificate for every new device (default false); "
                                                 "multipart requests may send it as a form field instead.")],
        request={"text/csv": OpenApiTypes.STR, "application/json": JSON_ROWS_SCHEMA,
                 "multipart/form-data": ImportUploadSerializer},
        responses={
            202: OpenApiResponse(ImportJobSerializer, description="Queued; follow `url` (also the Location header)."),
            400: OpenApiResponse(ERROR_SCHEMA, description="The file cannot be imported at all (field `file`), or "
                                                           "it has CSRs without issue_certs."),
            503: OpenApiResponse(ERROR_SCHEMA, description="The job queue cannot be reached."),
        },
        examples=[
            OpenApiExample("CSV", value=_CSV_EXAMPLE, media_type="text/csv", request_only=True),
            OpenApiExample("JSON", media_type="application/json", request_only=True, value=[
                {"name": "sensor-001", "display_name": "Boiler room", "group": "line-3", "tags": ["pilot"],
                 "attributes": {"site": "north", "floor": 3}},
                {"name": "sensor-002", "csr": "-----BEGIN CERTIFICATE REQUEST-----\n…\n"
                                              "-----END CERTIFICATE REQUEST-----\n"},
            ]),
            OpenApiExample("Queued", response_only=True, status_codes=["202"], value={
                **_JOB_EXAMPLE, "state": "pending", "done": 0, "failed": 0, "created": 0, "existing": 0,
                "certificates": 0, "errors": [], "bundle": None, "started": None, "finished": None,
                "timings": dict.fromkeys(PHASES, 0.0)}),
        ],
    )
    def post(self, request: Request, tenant: str) -> Response:
        upload, issue_certs = self._upload(request)
        job = submit_import(self.tenant, upload.data, fmt=upload.fmt, filename=upload.filename,
                            issue_certs=issue_certs, actor=self.actor)
        if not enqueue_import(job):
            raise unavailable("The job queue cannot be reached; try again shortly.", code="queue_unavailable")
        body = ImportJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    # `import` is also a valid device name: everything but POST at this path is that device's.
    @extend_schema(exclude=True)
    def get(self, request: Request, tenant: str) -> Any:
        return self._device_named_import(request, tenant)

    @extend_schema(exclude=True)
    def patch(self, request: Request, tenant: str) -> Any:
        return self._device_named_import(request, tenant)

    @extend_schema(exclude=True)
    def delete(self, request: Request, tenant: str) -> Any:
        return self._device_named_import(request, tenant)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method == "POST":
            super().initial(request, *args, **kwargs)

    def _device_named_import(self, request: Request, tenant: str) -> Any:
        from .devices import DeviceViewSet

        view = DeviceViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
        return view(request._request, tenant=tenant, name="import")

    def _upload(self, request: Request) -> tuple[Upload, bool]:
        issue_certs = _flag(request.query_params.get("issue_certs", ""), "issue_certs")
        data = request.data
        if isinstance(data, Upload):
            return data, issue_certs
        upload = request.FILES.get("file") if hasattr(request, "FILES") else None
        if upload is None:
            raise bad_request("Send the file as the body (Content-Type text/csv or application/json) or as the "
                              "multipart field `file`.", code="required", field="file")
        if upload.size is not None and upload.size > self.max_body_bytes:
            raise too_large(f"The file is larger than {self.max_body_bytes} bytes.")
        if isinstance(data, dict) and "issue_certs" in data:  # the multipart form (a QueryDict)
            issue_certs = _flag(str(data.get("issue_certs")), "issue_certs")
        return Upload(upload.read(), upload.content_type or "", upload.name or ""), issue_certs


# Jobs -----------------------------------------------------------------------------------------


class ImportJobFilter(django_filters.FilterSet):
    class Meta:
        model = ImportJob
        fields = ["state"]


@extend_schema_view(
    list=extend_schema(summary="List the tenant's import jobs", description="Newest first. Viewer role."),
    retrieve=extend_schema(
        summary="Show an import job", description="State, counts, the first errors with their row numbers and the "
                                                  "time spent per phase. Viewer role.",
        parameters=[OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")],
        examples=[OpenApiExample("Done, one bad row", value=_JOB_EXAMPLE, response_only=True)]),
)
class ImportJobViewSet(JsonErrorsMixin, TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       viewsets.GenericViewSet[ImportJob]):
    serializer_class = ImportJobSerializer
    lookup_field = "id"
    lookup_value_regex = JOB_ID_REGEX
    ordering = ("-created", "-id")
    ordering_fields = ("created",)
    filterset_class = ImportJobFilter
    action_roles = {"bundle": Role.OPERATOR}
    queryset = ImportJob.objects.none()  # the model, for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[ImportJob]:
        return ImportJob.objects.filter(tenant=self.tenant).select_related("tenant")

    def get_renderers(self) -> list[BaseRenderer]:
        renderers: list[BaseRenderer] = super().get_renderers()
        if getattr(self, "action", None) == "bundle":
            renderers.append(PemZipRenderer())
        return renderers

    @extend_schema(
        summary="Download an import job's certificate bundle",
        description="A zip with a folder per new device: `device.pem` (certificate and issuing CA), "
                    "`device.key` (when the key was generated here), `ca.pem` (the root to trust the broker "
                    "with) and `chain.pem`, plus `manifest.csv` (name, serial, fingerprint, not_after). It holds "
                    "private keys: keep it safe; it is deleted with the job after ROOST_IMPORT_KEEP_DAYS. "
                    "Operator role.",
        parameters=[OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")],
        responses={
            (200, ZIP): OpenApiResponse(OpenApiTypes.BINARY, description="The zip."),
            (404, "application/json"): OpenApiResponse(ERROR_SCHEMA, description="No such job, or the job "
                                                       "issued no certificates (so it has no bundle)."),
            (409, "application/json"): OpenApiResponse(ERROR_SCHEMA, description="The job is still pending or "
                                                                                 "running."),
        },
    )
    @action(detail=True, methods=["get"], url_path="bundle", filter_backends=[])
    def bundle(self, request: Request, tenant: str, id: str) -> FileResponse:  # noqa: A002 - the URL's name
        job = self.get_object()
        if not job.is_finished:
            raise conflict(f"The job is {job.state}; its bundle is ready when it is done.", code="job_not_finished")
        path = bundle_file(job)
        if path is None:
            raise not_found("This job has no bundle: it issued no certificates.", code="no_bundle")
        response = FileResponse(path.open("rb"), content_type=ZIP, as_attachment=True,
                                filename=f"roost-import-{job.pk}.zip")
        response["Cache-Control"] = "no-store"  # private keys: no cache may keep a copy
        return response


urlpatterns: list[Any] = [
    re_path(rf"^{TENANT_PREFIX}/devices/import/$", DeviceImportView.as_view(), name="device-import"),
]
