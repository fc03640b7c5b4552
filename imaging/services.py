"""Imaging writes: the model registry, the analysis job state machine, explanations on request and feedback.

Job states: WAITING -> QUEUED -> RUNNING -> SUCCEEDED | FAILED; WAITING/QUEUED/RUNNING -> CANCELLED. Every
transition locks the job row. QUEUED and RUNNING jobs hold one of the plan's `max_concurrent_jobs` slots; a job
created while none is free WAITS (nothing on the broker) until `analysis_jobs_start_waiting` queues it, oldest first,
when a job leaves its slot (or the beat sweep finds a free slot). Quota is reserved when the job is created (waiting
or not), committed once when it succeeds and released when it fails or is cancelled. The worker task only proceeds
from QUEUED, so a redelivered message is harmless.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.exceptions import Conflict, NotFound, ServiceError
from accounts.models import Organization, User
from accounts.services import audit_record
from imaging import selectors
from imaging.models import (
    ACTIVE_JOB_STATUSES,
    SLOT_JOB_STATUSES,
    AnalysisJob,
    Explanation,
    ExplanationSource,
    Feedback,
    Image,
    ImagingModel,
    JobStatus,
    ModelTask,
    Prediction,
    Study,
)

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


class NoModelInstalled(ServiceError):
    code = "no_model_installed"
    status = 503


# --- registry -----------------------------------------------------------------------------------------------------

def model_path(model: ImagingModel) -> Path:
    path = Path(model.path)
    return path if path.is_absolute() else Path(settings.IMAGING_MODELS_DIR) / path


@transaction.atomic
def model_register(*, model_dir: str | Path, activate: bool = True) -> ImagingModel:
    """Register (or refresh) the model saved in `model_dir` from its manifest; optionally make it the active one
    for its task. Reads the manifest as JSON, so the web process never needs torch."""
    directory = Path(model_dir).resolve()
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        name, version, task, sha = manifest["name"], manifest["version"], manifest["task"], manifest["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceError(f"{directory}: not a saved model directory (manifest.json missing or invalid).") from exc
    if task not in ModelTask.values:
        raise ServiceError(f"{directory}: unknown model task '{task}'.")
    root = Path(settings.IMAGING_MODELS_DIR).resolve()
    stored_path = str(directory.relative_to(root)) if directory.is_relative_to(root) else str(directory)
    model, _ = ImagingModel.objects.update_or_create(
        name=name, version=version,
        defaults={"task": task, "path": stored_path, "sha256": sha, "manifest": manifest,
                  "is_demo": bool(manifest.get("demo"))},
    )
    if activate:
        model_activate(model=model)
    return model


@transaction.atomic
def model_activate(*, model: ImagingModel) -> ImagingModel:
    ImagingModel.objects.filter(task=model.task, is_active=True).exclude(pk=model.pk).update(is_active=False)
    ImagingModel.objects.filter(pk=model.pk).update(is_active=True)
    model.is_active = True
    return model


# --- jobs -----------------------------------------------------------------------------------------------------------

def _enqueue(job_id: int) -> None:
    from imaging.tasks import analyze_study

    analyze_study.apply_async(kwargs={"job_id": job_id}, queue="gpu")


def _series_model_for(study: Study) -> ImagingModel | None:
    if not study.is_dicom:  # plain images uploaded together are a collection, not slices of one volume
        return None
    longest = max((s.image_count for s in study.series.all()), default=0)
    if longest < settings.IMAGING_SERIES_MIN_SLICES:
        return None
    return selectors.active_model(task=ModelTask.SERIES)


@transaction.atomic
def analysis_job_create(*, organization: Organization, study: Study, images: list[Image], requested_by: User | None,
                        retry_of: AnalysisJob | None = None, explain: bool = True) -> AnalysisJob:
    """Start an analysis of `images` (of `study`), reserving one unit of image quota per image. It is QUEUED when
    the plan has a free concurrent-job slot and no older analysis of the organisation is waiting, else WAITING."""
    from subscriptions.services import usage_reserve

    if not images:
        raise ServiceError("There are no images to analyse in this study; upload scans first.")
    model = selectors.active_model(task=ModelTask.IMAGE)
    if model is None:
        raise NoModelInstalled("No imaging model is installed yet, so the scans were stored but not analysed. "
                               "Ask an operator to run `./manage.py build_demo_imaging_models` or train a model, "
                               "then start the analysis from the study page.")
    job = AnalysisJob.objects.create(
        organization=organization, study=study, model=model, series_model=_series_model_for(study),
        requested_by=requested_by, images_total=len(images), retry_of=retry_of,
        attempt=(retry_of.attempt + 1) if retry_of else 1, status=JobStatus.WAITING, enqueue_count=0, explain=explain)
    job.images.set(images)
    reservation = usage_reserve(organization=organization, meter="images", quantity=len(images),
                                job_ref=f"imaging.analysisjob:{job.pk}")
    AnalysisJob.objects.filter(pk=job.pk).update(reservation_id=reservation.pk)
    job.reservation_id = reservation.pk
    Study.objects.filter(pk=study.pk).update(latest_job=job)
    # The same step that queues waiting jobs when a slot frees up: oldest first, so a new job never overtakes one
    # that waits (e.g. after an upgrade, before the next finish or sweep). It enqueues on commit.
    if job.pk in analysis_jobs_start_waiting(organization=organization):
        with scope(organization=organization):
            job.refresh_from_db(fields=["status", "queued_at", "enqueue_count"])
    audit_record(organization=organization, actor=requested_by, verb="imaging.job.create", target=job,
                 details={"images": len(images), "model": str(model), "attempt": job.attempt, "status": job.status})
    return job


def _slot_jobs(organization: Organization) -> int:
    with scope(organization=organization):
        return AnalysisJob.objects.filter(organization=organization, status__in=SLOT_JOB_STATUSES).count()


@transaction.atomic
def analysis_jobs_start_waiting(*, organization: Organization) -> list[int]:
    """Queue the organisation's oldest WAITING analyses while its plan has free concurrent-job slots; each is
    enqueued on commit. Returns the ids queued. Called whenever a job leaves its slot and by the beat sweep.

    Counting and queueing happen under the organisation's quota lock, so two workers finishing at once cannot both
    fill the same slot. Waiting rows locked by someone else (a cancel in progress) are skipped, never waited for:
    that cancel holds its job row and then asks for the quota lock we hold."""
    from subscriptions.services import jobs_slots_free

    free = jobs_slots_free(organization=organization, occupied=lambda: _slot_jobs(organization))
    if free <= 0:
        return []
    with scope(organization=organization):
        ids = list(AnalysisJob.objects.select_for_update(skip_locked=True)
                   .filter(organization=organization, status=JobStatus.WAITING)
                   .order_by("created_at", "id").values_list("pk", flat=True)[:free])
        if ids:
            AnalysisJob.objects.filter(pk__in=ids, status=JobStatus.WAITING).update(
                status=JobStatus.QUEUED, queued_at=timezone.now(), enqueue_count=F("enqueue_count") + 1)
    for job_id in ids:
        transaction.on_commit(lambda pk=job_id: _enqueue(pk))
    return ids


def analysis_jobs_start_waiting_all() -> int:
    """Beat safety net: start waiting analyses of every organisation that has a free slot (a finish whose
    transaction was lost, or a plan upgrade). Returns how many were queued."""
    with scopes_disabled():
        org_ids = set(AnalysisJob.objects.filter(status=JobStatus.WAITING).values_list("organization_id", flat=True))
    started = 0
    for organization in Organization.objects.filter(pk__in=org_ids):
        started += len(analysis_jobs_start_waiting(organization=organization))
    if started:
        logger.info("imaging: started %s waiting job(s) from the sweep", started)
    return started


def _locked(job_id: int) -> AnalysisJob | None:
    # of=("self",): lock the job row only. Locking the joined organisation row too would block every insert that
    # references it (job, ledger and audit rows take a key-share lock) and deadlock against the quota lock.
    with scopes_disabled():
        return (AnalysisJob.objects.select_for_update(of=("self",)).select_related("organization")
                .filter(pk=job_id).first())


def _settle_quota(job: AnalysisJob, *, commit: bool) -> None:
    from subscriptions.services import usage_commit, usage_release

    if job.reservation_id is None or job.quota_settled:
        return
    if commit:
        usage_commit(reservation=job.reservation_id)
    else:
        usage_release(reservation=job.reservation_id)
    job.quota_settled = "committed" if commit else "released"


@transaction.atomic
def analysis_job_start(*, job_id: int) -> AnalysisJob | None:
    """QUEUED -> RUNNING under a row lock; None (do nothing) for any other state or an unknown job."""
    job = _locked(job_id)
    if job is None or job.status != JobStatus.QUEUED:
        return None
    now = timezone.now()
    job.status, job.started_at, job.progress_at, job.error_message = JobStatus.RUNNING, now, now, ""
    job.save(update_fields=["status", "started_at", "progress_at", "error_message"])
    return job


def analysis_job_progress(*, job_id: int, images_done: int) -> str:
    """Record progress (also the liveness signal the sweeper reads); returns the job's current status."""
    with scopes_disabled():
        AnalysisJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            images_done=images_done, progress_at=timezone.now())
        return AnalysisJob.objects.filter(pk=job_id).values_list("status", flat=True).first() or ""


@transaction.atomic
def analysis_job_succeed(*, job_id: int) -> AnalysisJob | None:
    job = _locked(job_id)
    if job is None or job.status != JobStatus.RUNNING:
        return None
    with scope(organization=job.organization):
        _settle_quota(job, commit=True)
        job.status, job.finished_at = JobStatus.SUCCEEDED, timezone.now()
        job.images_done = job.images_total
        job.save(update_fields=["status", "finished_at", "images_done", "quota_settled"])
        audit_record(organization=job.organization, actor=None, actor_label="worker", verb="imaging.job.succeed",
                     target=job, details={"images": job.images_total})
    analysis_jobs_start_waiting(organization=job.organization)  # its slot is free
    return job


@transaction.atomic
def analysis_job_fail(*, job_id: int, message: str) -> AnalysisJob | None:
    job = _locked(job_id)
    if job is None or job.status not in ACTIVE_JOB_STATUSES:
        return None
    with scope(organization=job.organization):
        _settle_quota(job, commit=False)
        job.status, job.finished_at, job.error_message = JobStatus.FAILED, timezone.now(), message[:2000]
        job.save(update_fields=["status", "finished_at", "error_message", "quota_settled"])
        audit_record(organization=job.organization, actor=None, actor_label="worker", verb="imaging.job.fail",
                     target=job, details={"message": message[:500]})
    analysis_jobs_start_waiting(organization=job.organization)
    return job


@transaction.atomic
def analysis_job_cancel(*, organization: Organization, job: AnalysisJob, actor: User | None) -> AnalysisJob:
    locked = _locked(job.pk)
    if locked is None or locked.organization_id != organization.pk:
        raise NotFound("No such analysis.")
    if locked.status not in ACTIVE_JOB_STATUSES:
        raise Conflict(f"This analysis has already {locked.status}; there is nothing to cancel.")
    was = locked.status
    with scope(organization=organization):
        _settle_quota(locked, commit=False)
        locked.status, locked.finished_at = JobStatus.CANCELLED, timezone.now()
        locked.error_message = "Cancelled by a user; the reserved quota was given back."
        locked.save(update_fields=["status", "finished_at", "error_message", "quota_settled"])
        audit_record(organization=organization, actor=actor, verb="imaging.job.cancel", target=locked,
                     details={"was": was})
    analysis_jobs_start_waiting(organization=organization)
    return locked


def analysis_job_retry(*, organization: Organization, job: AnalysisJob, actor: User | None) -> AnalysisJob:
    """A failed or cancelled analysis runs again as a new attempt over the same images."""
    if job.organization_id != organization.pk:
        raise NotFound("No such analysis.")
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"Only failed or cancelled analyses can be retried; this one is {job.status}.")
    if job.retries.exists():
        raise Conflict("This analysis was already retried; retry the latest attempt instead.")
    return analysis_job_create(organization=organization, study=job.study, images=list(job.images.all()),
                               requested_by=actor, retry_of=job, explain=job.explain)


def study_analyze(*, organization: Organization, study: Study, actor: User | None) -> AnalysisJob:
    """Analyse the study's images that no waiting, queued, running or successful analysis covers (e.g. after a
    quota stop)."""
    covered = AnalysisJob.objects.filter(organization=organization, study=study).exclude(
        status__in=[JobStatus.FAILED, JobStatus.CANCELLED]).values_list("images", flat=True)
    images = list(Image.objects.filter(organization=organization, study=study).exclude(pk__in=covered))
    if not images:
        raise Conflict("Every image of this study is already analysed, queued or waiting for a free slot.")
    return analysis_job_create(organization=organization, study=study, images=images, requested_by=actor)


_COUNT_MAX = 32767  # PositiveSmallIntegerField's upper bound on PostgreSQL


def jobs_requeue_stuck(*, older_than_seconds: int | None = None) -> dict[str, int]:
    """Beat: recover analyses whose message or worker was lost. Returns {"requeued": sends, "failed": n}.

    - QUEUED longer than the timeout: its message is sent again, in case it was lost. A job that merely waits behind
      a backlog gets a duplicate, which the task ignores (only a QUEUED job starts, under its row lock). This never
      counts as an interruption and never fails a job, however long it waits. `queued_at` is reset on every send, so
      a waiting job gets at most one extra message per timeout window (4 an hour with the default 15 minutes).
    - RUNNING without progress longer than the timeout (a killed worker): an interruption. It is QUEUED again and
      sent again, up to IMAGING_MAX_REQUEUES times; the next interruption fails it, with its quota released. Once
      queued again it is a queued job like any other: waiting for a worker does not count against it.

    `enqueue_count` counts sends, `interrupt_count` interruptions. WAITING jobs are never touched here, however
    old: they wait for a slot, not for a worker (`analysis_jobs_start_waiting_all` is the sweep for them)."""
    timeout = older_than_seconds if older_than_seconds is not None else settings.IMAGING_STUCK_JOB_SECONDS
    cutoff = timezone.now() - timedelta(seconds=timeout)
    with scopes_disabled():
        queued = AnalysisJob.objects.filter(status=JobStatus.QUEUED, queued_at__lt=cutoff)
        running = AnalysisJob.objects.filter(status=JobStatus.RUNNING, progress_at__lt=cutoff)
        ids = list(queued.values_list("pk", flat=True)) + list(running.values_list("pk", flat=True))
    counts = {"requeued": 0, "failed": 0}
    interrupted = 0
    for job_id in ids:
        with transaction.atomic():
            job = _locked(job_id)
            if job is None or job.status not in SLOT_JOB_STATUSES:
                continue
            stamp = job.queued_at if job.status == JobStatus.QUEUED else job.progress_at
            if stamp is None or stamp >= cutoff:
                continue  # started, progressed or re-sent since the query above
            fields = ["queued_at", "enqueue_count"]
            if job.status == JobStatus.RUNNING:
                job.interrupt_count += 1
                if job.interrupt_count > settings.IMAGING_MAX_REQUEUES:
                    job.save(update_fields=["interrupt_count"])
                    transaction.on_commit(lambda pk=job.pk: analysis_job_fail(
                        job_id=pk, message="The analysis stopped responding several times; retry it, and contact "
                                           "support if it fails again."))
                    counts["failed"] += 1
                    continue
                job.status = JobStatus.QUEUED
                fields += ["status", "interrupt_count"]
                interrupted += 1
            job.queued_at = timezone.now()
            job.enqueue_count = min(job.enqueue_count + 1, _COUNT_MAX)  # a smallint: months of waiting saturate it
            job.save(update_fields=fields)
            transaction.on_commit(lambda pk=job.pk: _enqueue(pk))
            counts["requeued"] += 1
    if any(counts.values()):
        logger.warning("imaging: sent %s queued or interrupted job(s) again (%s interrupted), failed %s",
                       counts["requeued"], interrupted, counts["failed"])
    return counts


# --- explanations on request and feedback -------------------------------------------------------------------------

@transaction.atomic
def explanation_request(*, organization: Organization, prediction: Prediction, label: str,
                        actor: User | None) -> Explanation:
    """Ask for the Grad-CAM of any class of an analysed image; computed by the worker (no quota: same image)."""
    if prediction.organization_id != organization.pk:
        raise NotFound("No such prediction.")
    if label not in prediction.probabilities:
        raise ServiceError(f"'{label}' is not a class of this model; choose one of "
                           f"{', '.join(prediction.probabilities)}.")
    explanation, created = Explanation.objects.get_or_create(
        organization=organization, job=prediction.job, image=prediction.image, source=ExplanationSource.IMAGE,
        label=label, defaults={"status": JobStatus.QUEUED})
    if created or explanation.status == JobStatus.FAILED:
        if not created:
            Explanation.objects.filter(pk=explanation.pk).update(status=JobStatus.QUEUED)
            explanation.status = JobStatus.QUEUED

        def enqueue(pk=explanation.pk):
            from imaging.tasks import explain_image

            explain_image.apply_async(kwargs={"explanation_id": pk}, queue="gpu")

        transaction.on_commit(enqueue)
        audit_record(organization=organization, actor=actor, verb="imaging.explanation.request", target=explanation,
                     details={"label": label})
    return explanation


@transaction.atomic
def feedback_submit(*, organization: Organization, image: Image, author: User | None, is_correct: bool,
                    correct_label: str = "", comment: str = "") -> Feedback:
    """Record a clinician's verdict on the latest prediction of an image (one per author, updated in place)."""
    if image.organization_id != organization.pk:
        raise NotFound("No such image.")
    prediction = (Prediction.objects.filter(organization=organization, image=image)
                  .select_related("job").order_by("-created_at").first())
    if prediction is None:
        raise Conflict("This image has no prediction yet; wait for the analysis to finish.")
    correct_label = correct_label.strip()
    labels = list(prediction.probabilities)
    if is_correct:
        correct_label = prediction.predicted_label
    elif not correct_label:
        raise ServiceError(f"Choose the right label ({', '.join(labels)}) or mark the prediction as correct.")
    elif correct_label not in labels:
        raise ServiceError(f"'{correct_label}' is not a label of this model; choose one of {', '.join(labels)}.")
    feedback, _ = Feedback.objects.update_or_create(
        organization=organization, image=image, author=author,
        defaults={"prediction": prediction, "is_correct": is_correct, "correct_label": correct_label,
                  "comment": comment.strip()[:2000], "updated_at": timezone.now()})
    audit_record(organization=organization, actor=author, verb="imaging.feedback", target=image,
                 details={"is_correct": is_correct, "label": correct_label})
    return feedback


def phi_access_record(*, organization: Organization, actor: User | None, verb: str, target, ip_address: str | None,
                      details: dict | None = None) -> None:
    """Audit a view or download of a scan, result or report (PHI access)."""
    audit_record(organization=organization, actor=actor, verb=verb, target=target, ip_address=ip_address,
                 details=details)
