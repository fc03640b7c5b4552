"""Scans, Grad-CAM overlays and PDF reports as responses, shared by the web pages and the API.

The caller has fetched the row through a selector scoped by the request's organisation (another organisation's id
is already a 404). Files are never served by URL (see storage.py): they stream from storage, and each view or
download is audited as PHI access once the file could be opened, so a 404 records nothing.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpResponse

from accounts.exceptions import Conflict
from accounts.tenancy import client_ip
from imaging import reports, selectors, services, storage
from imaging.models import Explanation, Image, JobStatus, Study


class ReportNotReady(Conflict):
    code = "report_not_ready"


def request_actor(request):
    """The signed-in user (or the API key's creator); None otherwise. Works for Django and DRF requests."""
    user = getattr(request, "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def audit(request, verb: str, target, **details) -> None:
    services.phi_access_record(organization=request.organization, actor=request_actor(request), verb=verb,
                               target=target, ip_address=client_ip(request), details=details or None)


def file_response(path: str, *, content_type: str, filename: str | None = None,
                  attachment: bool = False) -> FileResponse:
    if not path:
        raise Http404("No such file.")
    try:
        handle = storage.default_storage.open(path, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("The file is missing from storage.") from exc
    response = FileResponse(handle, content_type=content_type, as_attachment=attachment, filename=filename)
    response["Cache-Control"] = "private, max-age=300"
    return response


def _audited(request, response: FileResponse, verb: str, target, details: dict) -> FileResponse:
    try:
        audit(request, verb, target, **details)
    except Exception:
        response.close()  # the storage handle, opened before the audit so that a 404 is not recorded as access
        raise
    return response


def image_preview(request, image: Image, **details) -> FileResponse:
    """The PNG preview of a scan (audit `imaging.scan.view`)."""
    response = file_response(image.preview, content_type="image/png")
    return _audited(request, response, "imaging.scan.view", image, details)


def image_values(request, image: Image, **details) -> FileResponse:
    """Raw 16-bit samples for client-side window/level (audit `imaging.scan.view`, what=values)."""
    response = file_response(image.values, content_type="application/octet-stream")
    return _audited(request, response, "imaging.scan.view", image, {"what": "values", **details})


def image_original(request, image: Image, **details) -> FileResponse:
    """The de-identified original (DICOM or PNG) as an attachment (audit `imaging.scan.download`)."""
    ext = "dcm" if image.kind == "dicom" else "png"
    stem = image.original_name.rsplit(".", 1)[0] or f"image-{image.pk}"
    response = file_response(image.file, content_type="application/dicom" if ext == "dcm" else "image/png",
                             filename=f"{stem}.{ext}", attachment=True)
    return _audited(request, response, "imaging.scan.download", image, details)


def explanation_overlay(request, explanation: Explanation, **details) -> FileResponse:
    """The Grad-CAM overlay PNG of one class (audit `imaging.result.view`)."""
    response = file_response(explanation.overlay, content_type="image/png")
    return _audited(request, response, "imaging.result.view", explanation, details)


def study_report(request, study: Study, **details) -> HttpResponse:
    """The PDF report of the study's latest finished analysis (audit `imaging.report.download`); ReportNotReady
    (409) while no analysis of the study has finished."""
    organization = request.organization
    job = study.latest_job
    if job is None or job.status != JobStatus.SUCCEEDED:
        job = selectors.latest_finished_job(organization=organization, study=study)
    if job is None:
        latest = study.latest_job
        raise ReportNotReady("The report is available once an analysis of this study has finished; " + (
            f"the latest analysis is '{latest.status}'." if latest else "this study has not been analysed yet."))
    pdf = reports.study_report_pdf(organization=organization, study=study, job=job)
    audit(request, "imaging.report.download", study, job=job.pk, **details)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{storage.report_name(study_id=study.pk)}"'
    return response
