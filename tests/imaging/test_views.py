"""Web pages: upload endpoints used by Uppy, the result page and its htmx partial, files, report, feedback."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from imaging.models import AnalysisJob, Feedback, JobStatus, Study
from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinician_client(client, clinician):
    client.force_login(clinician)
    return client


def _upload_via_page(client, files, capture):
    session = client.post(reverse("imaging:upload-session-create")).json()["id"]
    responses = [client.post(reverse("imaging:upload-file"), {"session": session, "file": f}) for f in files]
    with capture(execute=True):
        finish = client.post(reverse("imaging:upload-finish"), {"session": session})
    return responses, finish.json()


def test_pages_upload_one_file_per_request_then_finish_starts_one_job_per_study(
        clinician_client, org, tiny_models, django_capture_on_commit_callbacks):
    page = clinician_client.get(reverse("imaging:upload"))
    assert page.status_code == 200 and b"uppy.min.js" in page.content and b"Demo model, not for clinical use" in \
        page.content
    responses, finish = _upload_via_page(
        clinician_client, [upload("a.png", fx.png_bytes()), upload("b.jpg", fx.jpeg_bytes()),
                           upload("notes.pdf", fx.pdf_bytes())], django_capture_on_commit_callbacks)
    assert [r.status_code for r in responses] == [200, 200, 422]
    assert "PDF" in responses[2].json()["message"] and "upload PNG, JPEG or DICOM" in responses[2].json()["message"]
    assert len(finish["jobs"]) == 1 and finish["studies"][0]["images"] == 2
    study = Study.objects.get(organization=org)
    assert finish["studies"][0]["url"] == reverse("imaging:study-detail", kwargs={"pk": study.pk})
    assert study.latest_job.status == JobStatus.SUCCEEDED


def test_result_page_shows_viewer_probabilities_model_card_and_stops_polling_when_done(
        clinician_client, org, tiny_models, django_capture_on_commit_callbacks):
    _, finish = _upload_via_page(clinician_client, [upload(f"s{i}.dcm", fx.dicom_bytes(d))
                                                    for i, d in enumerate(fx.ct_series(count=3))],
                                 django_capture_on_commit_callbacks)
    study_id = finish["studies"][0]["id"]
    page = clinician_client.get(reverse("imaging:study-detail", kwargs={"pk": study_id}))
    html = page.content.decode()
    assert "Demo model, not for clinical use" in html
    for text in ("data-viewer", 'data-control="opacity"', 'data-control="slice"', "Model card", "tiny-image",
                 tiny_models["image"].sha256[:12], "Attention per slice", "viewer-data", "Window centre",
                 "Explain class"):  # a clinician may ask for other classes' heatmaps; viewers may not
        assert text in html, text
    assert "hx-trigger" not in html  # finished: no polling
    assert AuditEvent.objects.filter(organization=org, verb="imaging.study.view").exists()


def test_partial_polls_while_the_job_is_active(clinician_client, org, clinician, tiny_models):
    from imaging.uploads import study_upload

    job = study_upload(organization=org, uploaded_by=clinician, files=[upload("a.png", fx.png_bytes())]).jobs[0]
    partial = clinician_client.get(reverse("imaging:study-results", kwargs={"pk": job.study_id}))
    html = partial.content.decode()
    assert 'hx-trigger="every 2s"' in html and "Waiting for a worker" in html and "Cancel" in html
    response = clinician_client.post(reverse("imaging:job-cancel", kwargs={"pk": job.pk}), follow=True)
    assert b"cancelled" in response.content
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    partial = clinician_client.get(reverse("imaging:study-results", kwargs={"pk": job.study_id})).content.decode()
    assert "hx-trigger" not in partial and "Retry analysis" in partial
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("imaging.services._enqueue", lambda job_id: None)
        clinician_client.post(reverse("imaging:job-retry", kwargs={"pk": job.pk}))
    assert AnalysisJob.objects.filter(retry_of=job, attempt=2).exists()


def test_files_report_and_feedback_write_audit_events(clinician_client, org, clinician, tiny_models,
                                                      django_capture_on_commit_callbacks):
    from imaging.models import Explanation
    from imaging.uploads import study_upload

    with django_capture_on_commit_callbacks(execute=True):
        job = study_upload(organization=org, uploaded_by=clinician,
                           files=[upload("ct.dcm", fx.dicom_bytes(fx.ct_dataset()))]).jobs[0]
    image = job.images.get()
    explanation = Explanation.objects.get(job=job, image=image)
    preview = clinician_client.get(reverse("imaging:image-preview", kwargs={"pk": image.pk}))
    assert preview.status_code == 200 and preview["Content-Type"] == "image/png"
    values = clinician_client.get(reverse("imaging:image-values", kwargs={"pk": image.pk}))
    assert len(b"".join(values.streaming_content)) == image.width * image.height * 2
    original = clinician_client.get(reverse("imaging:image-original", kwargs={"pk": image.pk}))
    assert b"".join(original.streaming_content)[128:132] == b"DICM"
    overlay = clinician_client.get(reverse("imaging:explanation-overlay", kwargs={"pk": explanation.pk}))
    assert b"".join(overlay.streaming_content).startswith(b"\x89PNG")
    report = clinician_client.get(reverse("imaging:study-report", kwargs={"pk": job.study_id}))
    assert report.status_code == 200 and report.content.startswith(b"%PDF")
    verbs = set(AuditEvent.objects.filter(organization=org, actor=clinician).values_list("verb", flat=True))
    assert {"imaging.scan.view", "imaging.scan.download", "imaging.result.view", "imaging.report.download"} <= verbs

    url = reverse("imaging:image-feedback", kwargs={"pk": image.pk})
    clinician_client.post(url, {"is_correct": "false", "correct_label": "", "comment": "x"})
    assert not Feedback.objects.exists()  # the right label is required when the prediction is wrong
    clinician_client.post(url, {"is_correct": "false", "correct_label": "no_lesion", "comment": "artefact"})
    feedback = Feedback.objects.get(image=image)
    assert not feedback.is_correct and feedback.correct_label == "no_lesion" and feedback.comment == "artefact"


def test_explaining_another_class_adds_an_overlay(clinician_client, org, clinician, tiny_models,
                                                  django_capture_on_commit_callbacks):
    from imaging.models import Explanation, Prediction
    from imaging.uploads import study_upload

    with django_capture_on_commit_callbacks(execute=True):
        job = study_upload(organization=org, uploaded_by=clinician, files=[upload("a.png", fx.png_bytes())]).jobs[0]
    prediction = Prediction.objects.get(job=job)
    other = next(label for label in prediction.probabilities if label != prediction.predicted_label)
    with django_capture_on_commit_callbacks(execute=True):
        clinician_client.post(reverse("imaging:prediction-explain", kwargs={"pk": prediction.pk}), {"label": other})
    explanation = Explanation.objects.get(job=job, label=other)
    assert explanation.status == JobStatus.SUCCEEDED and explanation.overlay


def test_study_list_paginates_filters_and_hides_other_organisations(clinician_client, org, other_org, clinician):
    from imaging.models import Series

    for i in range(23):
        Study.objects.create(organization=org, title=f"Study {i:02d}")
    Study.objects.create(organization=other_org, title="Theirs")
    first = clinician_client.get(reverse("imaging:index")).content.decode()
    assert "Page 1 of 2" in first and "Study 22" in first and "Theirs" not in first
    second = clinician_client.get(reverse("imaging:index") + "?page=2").content.decode()
    assert "Study 00" in second
    empty = clinician_client.get(reverse("imaging:index") + "?status=failed").content.decode()
    assert "No studies with this status" in empty
    assert Series.objects.count() == 0


def test_empty_state_and_viewer_role_cannot_upload(client, org, make_member):
    from accounts.capabilities import Role

    client.force_login(make_member(org, Role.VIEWER))
    page = client.get(reverse("imaging:index")).content.decode()
    assert "No studies yet" in page and "Upload scans" not in page
    assert client.get(reverse("imaging:upload")).status_code == 403
    assert client.post(reverse("imaging:upload-session-create")).status_code == 403
