"""Imaging pages: studies list, upload (Uppy), study results (viewer, overlay, model card), files behind org checks."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.capabilities import Capability
from accounts.exceptions import ServiceError
from accounts.permissions import OrganizationRequiredMixin, request_can
from accounts.tenancy import client_ip
from imaging import phi_access, selectors, services, uploads
from imaging.forms import FeedbackForm
from imaging.models import ACTIVE_JOB_STATUSES, ExplanationSource, JobStatus
from imaging.phi_access import request_actor

PAGE_SIZE = 20


def _service_error_response(request, exc: ServiceError, fallback: str):
    if exc.status == 404:
        raise Http404(exc.message) from exc
    messages.error(request, exc.message)
    return redirect(fallback)


class StudyListView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_VIEW

    def get(self, request):
        status = request.GET.get("status", "")
        status = status if status in JobStatus.values else ""
        page = Paginator(selectors.study_list(organization=request.organization, status=status or None),
                         PAGE_SIZE).get_page(request.GET.get("page"))
        return render(request, "imaging/index.html", {
            "page": page, "status": status, "statuses": JobStatus.choices,
            "query": f"status={status}" if status else "",
            "can_analyze": request_can(request, Capability.IMAGING_ANALYZE),
            "model": selectors.active_model(task="image"),
        })


class UploadView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE

    def get(self, request):
        from django.conf import settings

        return render(request, "imaging/upload.html", {
            "model": selectors.active_model(task="image"),
            "max_file_mb": settings.IMAGING_MAX_FILE_BYTES // (1024 * 1024),
            "max_archive_mb": settings.IMAGING_MAX_ARCHIVE_BYTES // (1024 * 1024),
            "parallel": settings.IMAGING_UPLOAD_PARALLEL,
        })


class UploadSessionCreateView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE

    def post(self, request):
        session = uploads.upload_session_create(organization=request.organization, created_by=request_actor(request))
        return JsonResponse({"id": session.pk}, status=201)


def _csrf_rejection(request):
    """The CSRF middleware's own check, run by a view that is exempt from the middleware (see UploadFileView)."""
    return CsrfViewMiddleware(lambda _request: None).process_view(request, None, (), {})


def _too_large_response(exc: uploads.UploadTooLarge) -> JsonResponse:
    return JsonResponse({"message": exc.message, "code": exc.code, "files": []}, status=exc.status)


# Exempt from the middleware only because it reads request.POST (to look for the token) before the view could set the
# upload handlers: that would write the raw upload to a temporary file. dispatch runs the same check right after.
@method_decorator(csrf_exempt, name="dispatch")
class UploadFileView(OrganizationRequiredMixin, View):
    """One file per request (Uppy XHRUpload): per-file progress, error and retry in the browser."""

    required_capability = Capability.IMAGING_ANALYZE

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":
            # Raw DICOM must not touch disk before de-identification: files stay in memory, bounded in size.
            request.upload_handlers = uploads.in_memory_upload_handlers(request)
            try:
                uploads.upload_request_check(content_length=request.META.get("CONTENT_LENGTH"))
                rejection = _csrf_rejection(request)
            except uploads.UploadTooLarge as exc:
                return _too_large_response(exc)
            if rejection is not None:
                return rejection
        return super().dispatch(request, *args, **kwargs)

    def post(self, request):
        try:
            session_id, parts = request.POST.get("session"), request.FILES.getlist("file")
        except uploads.UploadTooLarge as exc:  # the body was longer than its Content-Length said
            return _too_large_response(exc)
        session = selectors.upload_session_get(organization=request.organization, pk=session_id)
        if len(parts) != 1:
            return JsonResponse({"message": "Send exactly one file per request in the field 'file'.",
                                 "files": []}, status=400)
        results = uploads.upload_part_add(session=session, upload=parts[0])
        body = {"files": [r.as_dict() for r in results]}
        if all(r.status == "rejected" for r in results):
            body["message"] = results[0].message if len(results) == 1 else (
                f"{len(results)} files in this archive were rejected: " + results[0].message)
            return JsonResponse(body, status=422)
        return JsonResponse(body)


class UploadFinishView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE

    def post(self, request):
        session = selectors.upload_session_get(organization=request.organization, pk=request.POST.get("session"))
        result = uploads.upload_session_finish(session=session, requested_by=request_actor(request))
        services.phi_access_record(organization=request.organization, actor=request_actor(request),
                                   verb="imaging.upload", target=session, ip_address=client_ip(request),
                                   details={"accepted": session.files_accepted, "rejected": session.files_rejected})
        studies = {s.pk: s for s in session.studies.all()}
        for job in result.jobs:
            studies.setdefault(job.study_id, job.study)
        return JsonResponse({
            "jobs": [{"id": j.pk, "study_id": j.study_id, "images": j.images_total, "status": j.status}
                     for j in result.jobs],
            "studies": [{"id": s.pk, "title": s.title, "images": s.image_count,
                         "url": reverse("imaging:study-detail", kwargs={"pk": s.pk})} for s in studies.values()],
            "errors": [{"code": e.code, "message": e.message} for e in result.errors],
        })


def _results_context(request, study) -> dict:
    org = request.organization
    jobs = list(selectors.job_list(organization=org, study=study)[:10])
    job = study.latest_job
    images = list(selectors.study_images(organization=org, study=study))
    predictions = {p.image_id: p for p in selectors.job_predictions(organization=org, job=job)} if job else {}
    explanations: dict[int, dict] = {}
    series_predictions = {}
    if job:
        for e in selectors.job_explanations(organization=org, job=job):
            explanations.setdefault(e.image_id, {})[(e.source, e.label)] = e
        series_predictions = {s.series_id: s for s in selectors.job_series_predictions(organization=org, job=job)}
    feedback = selectors.feedback_for_images(organization=org, image_ids=[i.pk for i in images])
    viewer_images = []
    for index, image in enumerate(images):
        prediction = predictions.get(image.pk)
        overlays = []
        for (source, label), e in sorted(explanations.get(image.pk, {}).items()):
            if e.status == JobStatus.SUCCEEDED and e.overlay:
                overlays.append({"id": e.pk, "label": label, "source": source,
                                 "url": reverse("imaging:explanation-overlay", kwargs={"pk": e.pk})})
        attention = None
        series_prediction = series_predictions.get(image.series_id)
        if series_prediction:
            attention = next((w for image_id, w in series_prediction.slice_attention if image_id == image.pk), None)
        viewer_images.append({
            "index": index, "image": image, "prediction": prediction, "overlays": overlays,
            "default_overlay": next((o for o in overlays if prediction and o["label"] == prediction.predicted_label
                                     and o["source"] == ExplanationSource.IMAGE), overlays[0] if overlays else None),
            "attention": attention, "feedback": feedback.get(image.pk),
            "pending_labels": [label for (source, label), e in explanations.get(image.pk, {}).items()
                               if e.status == JobStatus.QUEUED],
        })
    viewer_data = [{
        "id": v["image"].pk, "name": v["image"].original_name, "width": v["image"].width,
        "height": v["image"].height, "series": v["image"].series_id,
        "preview": reverse("imaging:image-preview", kwargs={"pk": v["image"].pk}),
        "values": reverse("imaging:image-values", kwargs={"pk": v["image"].pk}) if v["image"].values else None,
        "window": [v["image"].window_center, v["image"].window_width] if v["image"].window_width else None,
        "range": [v["image"].value_min, v["image"].value_max], "invert": v["image"].photometric == "MONOCHROME1",
        "overlays": v["overlays"], "default_overlay": v["default_overlay"]["id"] if v["default_overlay"] else None,
    } for v in viewer_images]
    series_rows = []
    for series in study.series.all():
        prediction = series_predictions.get(series.pk)
        if prediction:
            peak = max(w for _, w in prediction.slice_attention) if prediction.slice_attention else 1
            series_rows.append({"series": series, "prediction": prediction, "bars": [
                {"image_id": image_id, "weight": weight, "height": int(100 * weight / peak) if peak else 0}
                for image_id, weight in prediction.slice_attention]})
    return {
        "study": study, "job": job, "jobs": jobs, "viewer_images": viewer_images, "series_rows": series_rows,
        "waiting": _waiting_context(org, job),
        "viewer_data": viewer_data,
        "model": job.model if job else selectors.active_model(task="image"),
        "series_model": job.series_model if job else None,
        "polling": bool(job and job.status in ACTIVE_JOB_STATUSES) or any(v["pending_labels"] for v in viewer_images),
        "can_analyze": request_can(request, Capability.IMAGING_ANALYZE),
        "can_feedback": request_can(request, Capability.IMAGING_FEEDBACK),
        "unanalysed": sum(1 for v in viewer_images if v["prediction"] is None),
        "feedback_form": FeedbackForm(labels=job.model.labels if job else []),
    }


def _waiting_context(org, job) -> dict | None:
    """Why a WAITING analysis has not started: the plan's concurrent-analysis allowance and its place in line."""
    if job is None or job.status != JobStatus.WAITING:
        return None
    from subscriptions.services import entitlements

    ent = entitlements(org)
    return {"plan": ent.plan_name, "slots": ent.max_concurrent_jobs,
            "position": selectors.job_waiting_position(organization=org, job=job)}


def _started_message(job, *, retry: bool = False) -> str:
    if job.status == JobStatus.WAITING:
        return (f"{'New attempt' if retry else 'Analysis'} added. It waits for a free slot: your plan runs a set "
                "number of analyses at a time, and this one starts when one of them finishes.")
    return "Analysis queued again as a new attempt." if retry else "Analysis queued."


class StudyDetailView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        study = selectors.study_get(organization=request.organization, pk=pk)
        phi_access.audit(request, "imaging.study.view", study)
        return render(request, "imaging/study_detail.html", _results_context(request, study))


class StudyResultsPartialView(OrganizationRequiredMixin, View):
    """What htmx polls while an analysis runs; once done it renders without the polling trigger."""

    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        study = selectors.study_get(organization=request.organization, pk=pk)
        context = _results_context(request, study)
        if not context["polling"]:
            phi_access.audit(request, "imaging.result.view", study, job=context["job"].pk if context["job"] else None)
        return render(request, "imaging/partials/results.html", context)


class StudyAnalyzeView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE

    def post(self, request, pk: int):
        study = selectors.study_get(organization=request.organization, pk=pk)
        try:
            job = services.study_analyze(organization=request.organization, study=study, actor=request_actor(request))
        except ServiceError as exc:
            return _service_error_response(request, exc, study_url(study))
        messages.success(request, _started_message(job))
        return redirect(study_url(study))


def study_url(study) -> str:
    return reverse("imaging:study-detail", kwargs={"pk": study.pk})


class JobCancelView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE

    def post(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        try:
            services.analysis_job_cancel(organization=request.organization, job=job, actor=request_actor(request))
        except ServiceError as exc:
            return _service_error_response(request, exc, study_url(job.study))
        messages.info(request, "Analysis cancelled; the reserved quota was given back.")
        return redirect(study_url(job.study))


class JobRetryView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE

    def post(self, request, pk: int):
        job = selectors.job_get(organization=request.organization, pk=pk)
        try:
            new = services.analysis_job_retry(organization=request.organization, job=job, actor=request_actor(request))
        except ServiceError as exc:
            return _service_error_response(request, exc, study_url(job.study))
        messages.success(request, _started_message(new, retry=True))
        return redirect(study_url(job.study))


class ImageFeedbackView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_FEEDBACK

    def post(self, request, pk: int):
        image = selectors.image_get(organization=request.organization, pk=pk)
        job = image.study.latest_job
        form = FeedbackForm(request.POST, labels=job.model.labels if job else [])
        if not form.is_valid():
            messages.error(request, "Feedback not saved: " + " ".join(e for errs in form.errors.values() for e in errs))
        else:
            try:
                services.feedback_submit(organization=request.organization, image=image, author=request_actor(request),
                                         **form.cleaned_data)
            except ServiceError as exc:
                return _service_error_response(request, exc, study_url(image.study))
            messages.success(request, f"Thank you: feedback on {image.original_name} saved.")
        return redirect(f"{study_url(image.study)}?image={image.pk}")


class ExplanationRequestView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_ANALYZE  # a worker computes the heatmap: not for view-only roles

    def post(self, request, pk: int):
        prediction = selectors.prediction_get(organization=request.organization, pk=pk)
        try:
            services.explanation_request(organization=request.organization, prediction=prediction,
                                         label=request.POST.get("label", ""), actor=request_actor(request))
        except ServiceError as exc:
            return _service_error_response(request, exc, study_url(prediction.image.study))
        messages.info(request, f"Heatmap for '{request.POST.get('label')}' requested; it appears in a few seconds.")
        return redirect(f"{study_url(prediction.image.study)}?image={prediction.image_id}")


class ImagePreviewView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        return phi_access.image_preview(request, selectors.image_get(organization=request.organization, pk=pk))


class ImageValuesView(OrganizationRequiredMixin, View):
    """Raw 16-bit samples for client-side window/level of grayscale DICOM."""

    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        return phi_access.image_values(request, selectors.image_get(organization=request.organization, pk=pk))


class ImageOriginalView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        return phi_access.image_original(request, selectors.image_get(organization=request.organization, pk=pk))


class ExplanationOverlayView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        explanation = selectors.explanation_get(organization=request.organization, pk=pk)
        return phi_access.explanation_overlay(request, explanation)


class StudyReportView(OrganizationRequiredMixin, View):
    required_capability = Capability.IMAGING_VIEW

    def get(self, request, pk: int):
        study = selectors.study_get(organization=request.organization, pk=pk)
        try:
            return phi_access.study_report(request, study)
        except phi_access.ReportNotReady as exc:
            return HttpResponse(exc.message, status=409, content_type="text/plain")
