"""Background work of the registry: bulk imports and housekeeping."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .imports import claim_job, prune_jobs, run_job
from .models import ChangeEvent, ImportJob, ImportJobState

log = logging.getLogger(__name__)

# The broker catches up from the outbox after downtime; a week covers any sane outage.
CHANGE_EVENT_RETENTION = timedelta(days=7)


@shared_task
def prune_change_events() -> int:
    cutoff = timezone.now() - CHANGE_EVENT_RETENTION
    deleted, _ = ChangeEvent.objects.filter(created__lt=cutoff).delete()
    return deleted


@shared_task
def run_import(job_id: str) -> str:
    """Run one import job. A job is claimed with a conditional UPDATE (pending -> running), so a
    message delivered twice, or to two workers, runs it once."""
    job = claim_job(job_id)
    if job is None:
        return "not pending"
    return run_job(job).state


@shared_task
def prune_import_jobs() -> int:
    """Fail imports whose worker died; delete old jobs with their files (bundles hold private keys)."""
    return prune_jobs()


def enqueue_import(job: ImportJob) -> bool:
    """Queue a submitted job for a worker; a job no worker will ever see is failed at once,
    not left pending. True when it was queued."""
    try:
        run_import.delay(str(job.pk))
    except Exception:  # the broker of the queue is down or misconfigured: any kombu/redis error
        log.exception("could not queue import job %s", job.pk)
        job.state, job.message = ImportJobState.FAILED, "The job queue could not be reached; try again."
        job.save(update_fields=["state", "message", "updated"])
        return False
    return True
