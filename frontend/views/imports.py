"""Bulk import from a CSV: upload, a job page whose progress bar follows the worker, then the
per-row errors and the certificate bundle. Operator role, as in the API.

The job is the REST API's: devices/imports.submit_import checks and stores the file and
creates it, devices.tasks.run_import runs it in the Celery worker.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render

from devices.audit import Actor
from devices.imports import bundle_file, submit_import
from devices.models import ImportJob, Role, Tenant
from devices.tasks import enqueue_import

from ..access import tenant_view
from ..forms import ImportForm, add_service_errors

RECENT_JOBS = 10


def _job(tenant: Tenant, job_id: object) -> ImportJob:
    return get_object_or_404(ImportJob.objects.select_related("tenant"), tenant=tenant, pk=job_id)


@tenant_view(Role.OPERATOR)
def import_start(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The upload form and the latest jobs; a valid upload queues a job and opens its page."""
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = submit_import(tenant, upload.read(), filename=upload.name or "",
                                issue_certs=form.cleaned_data["issue_certs"], actor=Actor.for_user(request.user))
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            enqueue_import(job)  # the job page says so when it could not be queued
            return redirect("frontend:import-job", tenant.slug, job.pk)
    jobs = ImportJob.objects.filter(tenant=tenant).order_by("-created", "-id")[:RECENT_JOBS]
    return render(request, "frontend/imports/start.html", {
        "tenant": tenant, "section": "devices", "form": form, "jobs": jobs,
    })


@tenant_view(Role.OPERATOR)
def import_job(request: HttpRequest, tenant: Tenant, job_id: object) -> HttpResponse:
    return render(request, "frontend/imports/job.html", {"tenant": tenant, "section": "devices",
                                                          "job": _job(tenant, job_id)})


@tenant_view(Role.OPERATOR)
def import_progress(request: HttpRequest, tenant: Tenant, job_id: object) -> HttpResponse:
    """The job's progress as a fragment; it polls itself every second until the job is finished."""
    response = render(request, "frontend/imports/_progress.html", {"tenant": tenant, "job": _job(tenant, job_id)})
    response["Cache-Control"] = "no-store"
    return response


@tenant_view(Role.OPERATOR)
def import_bundle(request: HttpRequest, tenant: Tenant, job_id: object) -> HttpResponseBase:
    job = _job(tenant, job_id)
    path = bundle_file(job) if job.is_finished else None
    if path is None:
        raise Http404("This job has no bundle (yet).")
    response = FileResponse(path.open("rb"), content_type="application/zip", as_attachment=True,
                            filename=f"roost-import-{job.pk}.zip")
    response["Cache-Control"] = "no-store"  # private keys: no cache may keep a copy
    return response
