"""Thin Celery tasks. The ML stack (torch) is imported inside task bodies only, so the web process never loads it."""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from config.celery import app
from imaging import services
from imaging.decoding import ImageDecodeError

logger = logging.getLogger(__name__)


@app.task(name="imaging.analyze_study", queue="gpu", acks_late=True, reject_on_worker_lost=True,
          soft_time_limit=settings.IMAGING_JOB_SOFT_TIME_LIMIT, time_limit=settings.IMAGING_JOB_TIME_LIMIT)
def analyze_study(*, job_id: int) -> None:
    """Run one analysis job. Safe to deliver twice: only a QUEUED job is started, finished work is skipped."""
    job = services.analysis_job_start(job_id=job_id)
    if job is None:
        return
    try:
        from imaging import pipeline
        from imaging.ml.manifest import ModelLoadError

        try:
            finished = pipeline.run_job(job_id=job_id)
        except ModelLoadError as exc:
            logger.error("imaging job %s: model failed to load: %s", job_id, exc)
            services.analysis_job_fail(job_id=job_id, message="The analysis model could not be loaded (its files are "
                                       "missing or do not match the registered checksum). Ask an operator to "
                                       "re-install the model, then retry.")
            return
    except SoftTimeLimitExceeded:
        services.analysis_job_fail(job_id=job_id, message="The analysis took longer than "
                                   f"{settings.IMAGING_JOB_SOFT_TIME_LIMIT // 60} minutes and was stopped. Retry it, "
                                   "or split the study into smaller uploads.")
        return
    except ImageDecodeError as exc:
        services.analysis_job_fail(job_id=job_id, message=f"{exc} The analysis stopped; remove the file and retry.")
        return
    except Exception:
        logger.exception("imaging job %s failed", job_id)
        services.analysis_job_fail(job_id=job_id, message=f"The analysis failed unexpectedly (job {job_id}). Retry "
                                   "it; if it fails again, contact support with this job number.")
        return
    if finished:
        services.analysis_job_succeed(job_id=job_id)


@app.task(name="imaging.explain_image", queue="gpu", acks_late=True, reject_on_worker_lost=True,
          soft_time_limit=120, time_limit=150)
def explain_image(*, explanation_id: int) -> None:
    """Grad-CAM of one image for a class someone asked about."""
    from django_scopes import scopes_disabled

    from imaging import pipeline
    from imaging.models import Explanation, JobStatus

    try:
        pipeline.run_explanation(explanation_id=explanation_id)
    except Exception:
        logger.exception("imaging explanation %s failed", explanation_id)
        with scopes_disabled():
            Explanation.objects.filter(pk=explanation_id).update(status=JobStatus.FAILED)


@app.task(name="imaging.jobs_requeue_stuck", queue="default", acks_late=True, soft_time_limit=60, time_limit=90)
def jobs_requeue_stuck() -> dict:
    """Beat: give jobs lost with a message or a killed worker another run, then start waiting jobs wherever a slot is
    free (the safety net for a finish whose promotion was lost). Waiting jobs are never requeued or failed for age."""
    counts = services.jobs_requeue_stuck()
    return {**counts, "started": services.analysis_jobs_start_waiting_all()}
