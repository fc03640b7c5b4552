"""Imaging REST API: upload studies (multipart), read studies, read/cancel/retry analysis jobs, give feedback, ask for
heatmaps, and download what the web UI shows (previews, originals, Grad-CAM overlays, PDF reports)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAcceptable
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.capabilities import Capability
from accounts.exceptions import NotFound
from accounts.tenancy import client_ip
from imaging import phi_access, selectors, services, uploads
from imaging.models import AnalysisJob, Explanation, JobStatus, Study
from imaging.phi_access import request_actor


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


def explanation_json(e: Explanation) -> dict:
    return {"id": e.id, "label": e.label, "source": e.source, "status": e.status,
            "peak": [e.peak_x, e.peak_y] if e.peak_x is not None else None,
            "overlay_url": reverse("imaging_api:explanation-overlay", kwargs={"pk": e.pk}) if e.overlay else None}


def job_payload(*, organization, job: AnalysisJob) -> dict:
    """The JSON result of a job: status, progress, per-image predictions with explanations, series predictions."""
    predictions = list(selectors.job_predictions(organization=organization, job=job))
    feedback = selectors.feedback_for_images(organization=organization, image_ids=[p.image_id for p in predictions])
    series_explanations: dict[int, list] = {}
    for explanation in selectors.job_explanations(organization=organization, job=job).filter(source="series"):
        series_explanations.setdefault(explanation.image_id, []).append(explanation)

    return {
        "id": job.pk, "study_id": job.study_id, "status": job.status, "attempt": job.attempt,
        "retry_of": job.retry_of_id, "images_total": job.images_total, "images_done": job.images_done,
        "error_message": job.error_message, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "explain": job.explain,
        "model": model_card(job.model), "series_model": model_card(job.series_model),
        "predictions": [{
            "image_id": p.image_id, "file_name": p.image.original_name, "series_id": p.image.series_id,
            "preview_url": reverse("imaging_api:image-preview", kwargs={"pk": p.image_id}),
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
        result = uploads.study_upload(organization=request.organization, uploaded_by=request_actor(request),
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
        phi_access.audit(request, "imaging.result.view", job, via="api")
        return Response(job_payload(organization=request.organization, job=job))


class JobCancelView(APIView):
    required_capability = Capability.IMAGING_ANALYZE

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        job = services.analysis_job_cancel(organization=request.organization, job=job, actor=request_actor(request))
        return Response({"id": job.pk, "status": job.status})


class JobRetryView(APIView):
    required_capability = Capability.IMAGING_ANALYZE

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        new = services.analysis_job_retry(organization=request.organization, job=job, actor=request_actor(request))
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
        feedback = services.feedback_submit(organization=request.organization, image=image,
                                            author=request_actor(request), **data.validated_data)
        return Response({"image_id": image.pk, "is_correct": feedback.is_correct,
                         "correct_label": feedback.correct_label, "comment": feedback.comment})


class ExplainInput(serializers.Serializer):
    label = serializers.CharField(help_text="the class to explain: one of the prediction's probabilities' keys")


class PredictionExplainView(APIView):
    """Ask for the Grad-CAM heatmap of any class of an analysed image. A worker computes it: 202 with the
    explanation while it is queued (200 when it exists already); its `overlay_url` is set once it succeeded, as in
    the job's JSON."""

    required_capability = Capability.IMAGING_ANALYZE

    @extend_schema(request=ExplainInput, responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        prediction = selectors.prediction_get(organization=request.organization, pk=pk)
        data = ExplainInput(data=request.data)
        data.is_valid(raise_exception=True)
        explanation = services.explanation_request(organization=request.organization, prediction=prediction,
                                                   label=data.validated_data["label"], actor=request_actor(request))
        done = explanation.status == JobStatus.SUCCEEDED
        return Response({**explanation_json(explanation), "prediction_id": prediction.pk,
                         "image_id": prediction.image_id, "job_id": prediction.job_id},
                        status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)


class FileContentNegotiation(DefaultContentNegotiation):
    """A file endpoint answers with its file whatever the Accept header names (`image/png`, `*/*`, a browser's
    `text/html`); errors come back as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class FileView(APIView):
    """Streams a file of the organisation's (or a PDF) after the capability and organisation checks; the access is
    audited like the web page's, with `via: api`."""

    required_capability = Capability.IMAGING_VIEW
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FileContentNegotiation


def _binary(content_type: str) -> dict:
    return {(200, content_type): OpenApiTypes.BINARY, 404: OpenApiTypes.OBJECT}


class ImagePreviewView(FileView):
    """The scan's PNG preview (what the viewer shows)."""

    @extend_schema(responses=_binary("image/png"))
    def get(self, request, pk: int):
        image = selectors.image_get(organization=request.organization, pk=pk)
        return phi_access.image_preview(request, image, via="api")


class ImageOriginalView(FileView):
    """The stored original as an attachment: de-identified DICOM (`application/dicom`) or PNG."""

    @extend_schema(responses={**_binary("application/dicom"), (200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        image = selectors.image_get(organization=request.organization, pk=pk)
        return phi_access.image_original(request, image, via="api")


class ExplanationOverlayView(FileView):
    """The Grad-CAM overlay PNG of one class (RGBA, at most 256 px on its longer side: stretch it over the scan);
    404 while it is not computed yet."""

    @extend_schema(responses=_binary("image/png"))
    def get(self, request, pk: int):
        explanation = selectors.explanation_get(organization=request.organization, pk=pk)
        if not explanation.overlay:
            raise NotFound(f"This heatmap has no overlay yet (status '{explanation.status}'); poll the analysis "
                           "until the explanation's overlay_url is set.")
        return phi_access.explanation_overlay(request, explanation, via="api")


class StudyReportView(FileView):
    """The PDF report of the study's latest finished analysis; 409 `report_not_ready` while none has finished."""

    @extend_schema(responses={**_binary("application/pdf"), 409: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        study = selectors.study_get(organization=request.organization, pk=pk)
        return phi_access.study_report(request, study, via="api")
