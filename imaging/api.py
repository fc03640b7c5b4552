"""Imaging REST API: upload studies (multipart), read studies, read/cancel/retry analysis jobs, give feedback."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.capabilities import Capability
from accounts.tenancy import client_ip
from imaging import selectors, services, uploads
from imaging.models import AnalysisJob, Study


def model_card(model) -> dict | None:
    if model is None:
        return None
    manifest = model.manifest
    return {"name": model.name, "version": model.version, "task": model.task, "sha256": model.sha256,
            "labels": model.labels, "input_size": manifest.get("input_size"), "arch": manifest.get("arch"),
            "metrics": {k: manifest.get("metrics", {}).get(k) for k in ("accuracy", "roc_auc", "macro_f1", "n",
                                                                         "pointing_game")},
            "training_data": manifest.get("training_data", {}), "intended_use": model.intended_use,
            "is_demo": model.is_demo, "created_at": manifest.get("created_at")}


def job_payload(*, organization, job: AnalysisJob) -> dict:
    """The JSON result of a job: status, progress, per-image predictions with explanations, series predictions."""
    predictions = list(selectors.job_predictions(organization=organization, job=job))
    feedback = selectors.feedback_for_images(organization=organization, image_ids=[p.image_id for p in predictions])
    series_explanations: dict[int, list] = {}
    for explanation in selectors.job_explanations(organization=organization, job=job).filter(source="series"):
        series_explanations.setdefault(explanation.image_id, []).append(explanation)

    def explanation_json(e) -> dict:
        return {"id": e.id, "label": e.label, "source": e.source, "status": e.status,
                "peak": [e.peak_x, e.peak_y] if e.peak_x is not None else None}

    return {
        "id": job.pk, "study_id": job.study_id, "status": job.status, "attempt": job.attempt,
        "retry_of": job.retry_of_id, "images_total": job.images_total, "images_done": job.images_done,
        "error_message": job.error_message, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "explain": job.explain,
        "model": model_card(job.model), "series_model": model_card(job.series_model),
        "predictions": [{
            "image_id": p.image_id, "file_name": p.image.original_name, "series_id": p.image.series_id,
            "predicted_label": p.predicted_label, "confidence": p.confidence, "probabilities": p.probabilities,
            "model": {"name": p.model_name, "version": p.model_version, "sha256": p.model_sha256},
            "explanations": [explanation_json(e) for e in p.image.job_explanations],
            "feedback": ({"is_correct": feedback[p.image_id].is_correct,
                          "correct_label": feedback[p.image_id].correct_label,
                          "comment": feedback[p.image_id].comment} if p.image_id in feedback else None),
        } for p in predictions],
        "series_predictions": [{
            "series_id": s.series_id, "predicted_label": s.predicted_label, "confidence": s.confidence,
            "probabilities": s.probabilities,
            "slice_attention": [{"image_id": image_id, "weight": weight} for image_id, weight in s.slice_attention],
            "explanations": [explanation_json(e) for image_id, _ in s.slice_attention
                             for e in series_explanations.get(image_id, [])],
            "model": {"name": s.model_name, "version": s.model_version, "sha256": s.model_sha256},
        } for s in selectors.job_series_predictions(organization=organization, job=job)],
    }


class StudyOutput(serializers.ModelSerializer):
    latest_job_status = serializers.CharField(source="latest_job.status", default=None)

    class Meta:
        model = Study
        fields = ["id", "title", "modality", "description", "study_instance_uid", "image_count", "created_at",
                  "latest_job_id", "latest_job_status"]


class UploadInput(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False)
    explain = serializers.BooleanField(default=True, help_text="compute Grad-CAM heatmaps (default true)")


class StudyListCreateView(ListAPIView):
    """GET: the organisation's studies, newest first. POST (multipart, field `files`, repeatable): upload PNG, JPEG,
    DICOM or .zip files; every file gets its own result, and the accepted ones are analysed."""

    capabilities = {"GET": Capability.IMAGING_VIEW, "POST": Capability.IMAGING_ANALYZE}
    serializer_class = StudyOutput
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.study_list(organization=self.request.organization)

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            # Before anything parses the body (session authentication's CSRF check reads request.POST): raw DICOM
            # must not reach a temporary file before de-identification, so files stay in memory, bounded in size.
            request.upload_handlers = uploads.in_memory_upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":  # refuse an oversized body before any of it is read
            uploads.upload_request_check(content_length=request.META.get("CONTENT_LENGTH"))
        super().initial(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": UploadInput}, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = UploadInput(data={"files": request.FILES.getlist("files"),
                                 "explain": request.data.get("explain", True)})
        data.is_valid(raise_exception=True)
        result = uploads.study_upload(organization=request.organization, uploaded_by=_user(request),
                                      files=data.validated_data["files"], ip_address=client_ip(request),
                                      explain=data.validated_data["explain"])
        studies = sorted({f.study_id for f in result.files if f.study_id})
        body = {
            "upload_id": result.session.pk,
            "files": [f.as_dict() for f in result.files],
            "studies": StudyOutput(Study.objects.filter(organization=request.organization, pk__in=studies),
                                   many=True).data,
            "jobs": [{"id": j.pk, "study_id": j.study_id, "status": j.status, "images_total": j.images_total}
                     for j in result.jobs],
            "errors": [{"code": e.code, "message": e.message, "details": e.details} for e in result.errors],
        }
        if not studies:
            return Response({"error": {"code": "no_files_accepted",
                                       "message": "None of the files could be used; see each file's message.",
                                       "details": body}}, status=status.HTTP_400_BAD_REQUEST)
        if result.errors and not result.jobs:
            first = result.errors[0]
            return Response({"error": {"code": first.code, "message": first.message, "details": body}},
                            status=first.status)
        return Response(body, status=status.HTTP_201_CREATED)


def _user(request):
    return request.user if getattr(request.user, "is_authenticated", False) else None


class StudyDetailView(APIView):
    required_capability = Capability.IMAGING_VIEW

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        org = request.organization
        study = selectors.study_get(organization=org, pk=pk)
        images = selectors.study_images(organization=org, study=study)
        return Response({**StudyOutput(study).data,
                         "series": [{"id": s.pk, "description": s.description, "modality": s.modality,
                                     "image_count": s.image_count} for s in study.series.all()],
                         "images": [{"id": i.pk, "file_name": i.original_name, "series_id": i.series_id,
                                     "kind": i.kind, "width": i.width, "height": i.height} for i in images],
                         "jobs": [{"id": j.pk, "status": j.status, "attempt": j.attempt}
                                  for j in selectors.job_list(organization=org, study=study)]})


class JobDetailView(APIView):
    """An analysis job with its results: probabilities, Grad-CAM peaks, series attention and the model card."""

    required_capability = Capability.IMAGING_VIEW

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        services.phi_access_record(organization=request.organization, actor=_user(request),
                                   verb="imaging.result.view", target=job, ip_address=client_ip(request),
                                   details={"via": "api"})
        return Response(job_payload(organization=request.organization, job=job))


class JobCancelView(APIView):
    required_capability = Capability.IMAGING_ANALYZE

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        job = services.analysis_job_cancel(organization=request.organization, job=job, actor=_user(request))
        return Response({"id": job.pk, "status": job.status})


class JobRetryView(APIView):
    required_capability = Capability.IMAGING_ANALYZE

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        new = services.analysis_job_retry(organization=request.organization, job=job, actor=_user(request))
        return Response({"id": new.pk, "status": new.status, "attempt": new.attempt, "retry_of": job.pk},
                        status=status.HTTP_201_CREATED)


class FeedbackInput(serializers.Serializer):
    is_correct = serializers.BooleanField()
    correct_label = serializers.CharField(required=False, allow_blank=True, default="")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ImageFeedbackView(APIView):
    required_capability = Capability.IMAGING_FEEDBACK

    @extend_schema(request=FeedbackInput, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        image = selectors.image_get(organization=request.organization, pk=pk)
        data = FeedbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        feedback = services.feedback_submit(organization=request.organization, image=image, author=_user(request),
                                            **data.validated_data)
        return Response({"image_id": image.pk, "is_correct": feedback.is_correct,
                         "correct_label": feedback.correct_label, "comment": feedback.comment})
