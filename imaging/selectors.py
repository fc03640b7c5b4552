"""Every imaging read, scoped by the caller's organisation; another organisation's id is a 404."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from accounts.models import Organization
from imaging.models import (
    AnalysisJob,
    Explanation,
    ExplanationSource,
    Feedback,
    Image,
    ImagingModel,
    JobStatus,
    ModelTask,
    Prediction,
    SeriesPrediction,
    Study,
    UploadSession,
)


def _get(qs: QuerySet, pk, what: str):
    obj = qs.filter(pk=pk).first() if str(pk).isdigit() else None
    if obj is None:
        raise Http404(f"No such {what}.")
    return obj


def study_list(*, organization: Organization, status: str | None = None) -> QuerySet[Study]:
    qs = Study.objects.filter(organization=organization).select_related("latest_job", "latest_job__model")
    return qs.filter(latest_job__status=status) if status else qs


def study_get(*, organization: Organization, pk) -> Study:
    return _get(Study.objects.filter(organization=organization).select_related("latest_job"), pk, "study")


def study_images(*, organization: Organization, study: Study) -> QuerySet[Image]:
    return Image.objects.filter(organization=organization, study=study).select_related("series").order_by(
        "series__series_number", "series_id", "slice_position", "instance_number", "frame_index", "id")


def image_get(*, organization: Organization, pk) -> Image:
    return _get(Image.objects.filter(organization=organization).select_related("study", "series"), pk, "image")


def upload_session_get(*, organization: Organization, pk) -> UploadSession:
    return _get(UploadSession.objects.filter(organization=organization), pk, "upload")


def job_get(*, organization: Organization, pk) -> AnalysisJob:
    return _get(AnalysisJob.objects.filter(organization=organization).select_related("study", "model", "series_model"),
                pk, "analysis")


def job_list(*, organization: Organization, study: Study) -> QuerySet[AnalysisJob]:
    return AnalysisJob.objects.filter(organization=organization, study=study).select_related("model")


def job_waiting_position(*, organization: Organization, job: AnalysisJob) -> int:
    """1 for the organisation's next analysis to start, 2 behind it, ...: waiting jobs start oldest first."""
    ahead = AnalysisJob.objects.filter(organization=organization, status=JobStatus.WAITING).filter(
        Q(created_at__lt=job.created_at) | Q(created_at=job.created_at, pk__lt=job.pk))
    return ahead.count() + 1


def job_predictions(*, organization: Organization, job: AnalysisJob) -> QuerySet[Prediction]:
    explanations = Explanation.objects.filter(organization=organization, job=job, source=ExplanationSource.IMAGE)
    return (Prediction.objects.filter(organization=organization, job=job).select_related("image", "image__series")
            .prefetch_related(Prefetch("image__explanations", queryset=explanations, to_attr="job_explanations"))
            .order_by("image__series_id", "image__slice_position", "image__instance_number", "image__frame_index",
                      "image_id"))


def job_series_predictions(*, organization: Organization, job: AnalysisJob) -> QuerySet[SeriesPrediction]:
    return SeriesPrediction.objects.filter(organization=organization, job=job).select_related("series")


def job_explanations(*, organization: Organization, job: AnalysisJob) -> QuerySet[Explanation]:
    return Explanation.objects.filter(organization=organization, job=job)


def explanation_get(*, organization: Organization, pk) -> Explanation:
    return _get(Explanation.objects.filter(organization=organization).select_related("image", "job"), pk,
                "explanation")


def prediction_get(*, organization: Organization, pk) -> Prediction:
    return _get(Prediction.objects.filter(organization=organization).select_related("image", "job", "job__model"),
                pk, "prediction")


def feedback_for_images(*, organization: Organization, image_ids: list[int]) -> dict[int, Feedback]:
    rows = Feedback.objects.filter(organization=organization, image_id__in=image_ids).order_by("updated_at")
    return {row.image_id: row for row in rows}


def latest_finished_job(*, organization: Organization, study: Study) -> AnalysisJob | None:
    return job_list(organization=organization, study=study).filter(status=JobStatus.SUCCEEDED).first()


# The model registry is shared by all organisations (demo and operator-installed models).

def model_list() -> QuerySet[ImagingModel]:
    return ImagingModel.objects.all()


def active_model(*, task: str) -> ImagingModel | None:
    """The model a new analysis uses: the settings override (`name` or `name:version`), else the active row."""
    override = settings.IMAGING_IMAGE_MODEL if task == ModelTask.IMAGE else settings.IMAGING_SERIES_MODEL
    if override:
        name, _, version = override.partition(":")
        qs = ImagingModel.objects.filter(task=task, name=name)
        if version:
            qs = qs.filter(version=version)
        return qs.order_by("-created_at").first()
    return ImagingModel.objects.filter(task=task, is_active=True).first()


def model_get_by_name(*, name: str, version: str | None = None) -> ImagingModel | None:
    qs = ImagingModel.objects.filter(name=name)
    if version:
        qs = qs.filter(version=version)
    return qs.order_by("-created_at").first()
