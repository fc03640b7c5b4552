"""API downloads of what the web UI shows (previews, originals, Grad-CAM overlays, PDF reports) and heatmaps on
request: real upload, tiny models and files in storage; every test has a second organisation that sees none of it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.capabilities import Role
from accounts.models import AuditEvent
from imaging import storage
from imaging.models import Explanation, JobStatus, Prediction
from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db


def _key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def _session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _analysed(org, user, capture, files=None):
    """One study analysed for real (eager worker): job, image, its prediction and its Grad-CAM explanation."""
    from imaging.uploads import study_upload

    with capture(execute=True):
        job = study_upload(organization=org, uploaded_by=user,
                           files=files or [upload("ct.dcm", fx.dicom_bytes(fx.ct_dataset()))]).jobs[0]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    image = job.images.get()
    prediction = Prediction.objects.get(job=job, image=image)
    explanation = Explanation.objects.get(job=job, image=image, source="image")
    return {"job": job, "study": job.study, "image": image, "prediction": prediction, "explanation": explanation}


def _urls(objects) -> dict[str, str]:
    return {
        "overlay": reverse("imaging_api:explanation-overlay", kwargs={"pk": objects["explanation"].pk}),
        "preview": reverse("imaging_api:image-preview", kwargs={"pk": objects["image"].pk}),
        "original": reverse("imaging_api:image-original", kwargs={"pk": objects["image"].pk}),
        "report": reverse("imaging_api:study-report", kwargs={"pk": objects["study"].pk}),
        "explain": reverse("imaging_api:prediction-explain", kwargs={"pk": objects["prediction"].pk}),
    }


PHI_VERBS = ["imaging.scan.view", "imaging.scan.download", "imaging.result.view", "imaging.report.download"]


def _events(org, verb: str):
    return AuditEvent.objects.filter(organization=org, verb=verb)


@pytest.fixture
def ours(org, clinician, tiny_models, django_capture_on_commit_callbacks):
    return _analysed(org, clinician, django_capture_on_commit_callbacks)


@pytest.fixture
def theirs(other_org, other_owner, tiny_models, django_capture_on_commit_callbacks):
    return _analysed(other_org, other_owner, django_capture_on_commit_callbacks)


def test_job_payload_urls_serve_the_stored_overlay_and_preview_and_each_is_audited(
        org, other_org, other_owner, api_key_for, ours, theirs):
    client = _key_client(api_key_for(org))
    body = client.get(reverse("imaging_api:job-detail", kwargs={"pk": ours["job"].pk})).json()
    [prediction] = body["predictions"]
    [explanation] = prediction["explanations"]
    assert {"id", "label", "source", "status", "peak"} <= set(explanation)  # the existing keys stay
    assert explanation["overlay_url"] == _urls(ours)["overlay"]
    assert prediction["preview_url"] == _urls(ours)["preview"]

    overlay = client.get(explanation["overlay_url"])
    assert overlay.status_code == 200 and overlay["Content-Type"] == "image/png"
    data = _body(overlay)
    assert data == storage.read_bytes(ours["explanation"].overlay) and data.startswith(b"\x89PNG")
    preview = client.get(prediction["preview_url"], HTTP_ACCEPT="image/png")  # a file endpoint honours image/png
    assert preview.status_code == 200 and preview["Content-Type"] == "image/png"
    assert _body(preview) == storage.read_bytes(ours["image"].preview)

    [result_view] = _events(org, "imaging.result.view").filter(target_type="imaging.explanation")
    assert result_view.target_id == str(ours["explanation"].pk) and result_view.details == {"via": "api"}
    [scan_view] = _events(org, "imaging.scan.view")
    assert scan_view.target_id == str(ours["image"].pk) and scan_view.details == {"via": "api"}
    client.get(explanation["overlay_url"])
    assert _events(org, "imaging.result.view").filter(target_type="imaging.explanation").count() == 2  # per download

    # the other organisation's key and members get 404 for the same URLs and leave no audit trail
    other_key, other_session = _key_client(api_key_for(other_org)), _session_client(other_owner)
    for client in (other_key, other_session):
        for url in (explanation["overlay_url"], prediction["preview_url"]):
            response = client.get(url, HTTP_ACCEPT="image/png")
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url
    assert not AuditEvent.objects.filter(organization=other_org, verb__in=["imaging.result.view",
                                                                           "imaging.scan.view"]).exists()
    assert _events(org, "imaging.scan.view").count() == 1
    # and their own payload points at their own files only
    their_body = other_key.get(reverse("imaging_api:job-detail", kwargs={"pk": theirs["job"].pk})).json()
    assert their_body["predictions"][0]["explanations"][0]["overlay_url"] == _urls(theirs)["overlay"]


def test_original_is_the_stored_file_as_an_attachment(org, other_org, clinician, api_key_for, ours,
                                                      django_capture_on_commit_callbacks):
    client = _key_client(api_key_for(org))
    dicom = client.get(_urls(ours)["original"])
    assert dicom.status_code == 200 and dicom["Content-Type"] == "application/dicom"
    assert dicom["Content-Disposition"].startswith("attachment;") and '.dcm"' in dicom["Content-Disposition"]
    data = _body(dicom)
    assert data == storage.read_bytes(ours["image"].file) and data[128:132] == b"DICM"

    png = _analysed(org, clinician, django_capture_on_commit_callbacks, files=[upload("chest.png", fx.png_bytes())])
    response = client.get(_urls(png)["original"])
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert 'filename="chest.png"' in response["Content-Disposition"]
    assert _body(response) == storage.read_bytes(png["image"].file)

    downloads = _events(org, "imaging.scan.download")
    assert sorted(downloads.values_list("target_id", flat=True)) == sorted([str(ours["image"].pk),
                                                                            str(png["image"].pk)])
    assert all(e.details == {"via": "api"} for e in downloads)
    assert _key_client(api_key_for(other_org)).get(_urls(ours)["original"]).status_code == 404
    assert downloads.count() == 2 and not _events(other_org, "imaging.scan.download").exists()


def test_report_is_a_pdf_of_the_latest_finished_analysis_and_409_before_one_finished(
        org, other_org, clinician, api_key_for, ours, tiny_models):
    from imaging.uploads import study_upload

    client = _key_client(api_key_for(org))
    report = client.get(_urls(ours)["report"])
    assert report.status_code == 200 and report["Content-Type"] == "application/pdf"
    assert report.content.startswith(b"%PDF")
    assert report["Content-Disposition"] == f'attachment; filename="{storage.report_name(study_id=ours["study"].pk)}"'
    [event] = _events(org, "imaging.report.download")
    assert event.target_id == str(ours["study"].pk) and event.details == {"job": ours["job"].pk, "via": "api"}

    # on_commit not run: the analysis stays queued, so nothing has finished yet
    pending = study_upload(organization=org, uploaded_by=clinician, files=[upload("a.png", fx.png_bytes())]).jobs[0]
    url = reverse("imaging_api:study-report", kwargs={"pk": pending.study_id})
    response = client.get(url, HTTP_ACCEPT="application/pdf")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "report_not_ready"
    assert "once an analysis of this study has finished" in error["message"] and "'queued'" in error["message"]
    assert _events(org, "imaging.report.download").count() == 1  # the refusal is no download
    web = _session_client(clinician).get(reverse("imaging:study-report", kwargs={"pk": pending.study_id}))
    assert web.status_code == 409 and b"once an analysis of this study has finished" in web.content

    other = _key_client(api_key_for(other_org))
    assert other.get(_urls(ours)["report"]).status_code == 404
    assert other.get(url).status_code == 404
    assert not _events(other_org, "imaging.report.download").exists()


def test_explain_queues_a_heatmap_whose_overlay_is_404_until_the_worker_made_it(
        org, other_org, api_key_for, ours, django_capture_on_commit_callbacks):
    client = _key_client(api_key_for(org))
    prediction = ours["prediction"]
    other = next(label for label in prediction.probabilities if label != prediction.predicted_label)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_urls(ours)["explain"], {"label": other}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    explanation = Explanation.objects.get(job=ours["job"], image=ours["image"], label=other)
    assert body["id"] == explanation.pk and body["label"] == other and body["status"] == JobStatus.QUEUED
    assert body["overlay_url"] is None and body["prediction_id"] == prediction.pk
    assert len(callbacks) == 1  # the worker task, enqueued on commit

    overlay_url = reverse("imaging_api:explanation-overlay", kwargs={"pk": explanation.pk})
    pending = client.get(overlay_url)
    assert pending.status_code == 404
    assert pending.json()["error"]["code"] == "not_found" and "no overlay yet" in pending.json()["error"]["message"]
    assert not _events(org, "imaging.result.view").filter(target_id=str(explanation.pk)).exists()
    job_url = reverse("imaging_api:job-detail", kwargs={"pk": ours["job"].pk})
    listed = {e["label"]: e for e in client.get(job_url).json()["predictions"][0]["explanations"]}
    assert listed[other]["status"] == JobStatus.QUEUED and listed[other]["overlay_url"] is None

    callbacks[0]()  # the worker runs
    listed = {e["label"]: e for e in client.get(job_url).json()["predictions"][0]["explanations"]}
    assert listed[other]["status"] == JobStatus.SUCCEEDED and listed[other]["overlay_url"] == overlay_url
    served = client.get(overlay_url)
    explanation.refresh_from_db()
    assert served.status_code == 200 and _body(served) == storage.read_bytes(explanation.overlay)
    assert _events(org, "imaging.result.view").filter(target_id=str(explanation.pk)).count() == 1
    again = client.post(_urls(ours)["explain"], {"label": other}, format="json")
    assert again.status_code == 200 and again.json()["overlay_url"] == overlay_url  # exists already: nothing queued

    unknown = client.post(_urls(ours)["explain"], {"label": "tumour"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"].startswith("'tumour' is not a class of this model; choose one of")
    assert client.post(_urls(ours)["explain"], {}, format="json").status_code == 400
    assert not Explanation.objects.filter(label="tumour").exists()

    theirs = _key_client(api_key_for(other_org)).post(_urls(ours)["explain"], {"label": other}, format="json")
    assert theirs.status_code == 404
    assert Explanation.objects.filter(image=ours["image"]).count() == 2


def test_viewers_may_look_at_overlays_but_not_ask_for_heatmaps(client, org, other_org, make_member, api_key_for,
                                                               ours, theirs):
    viewer = make_member(org, Role.VIEWER)
    prediction = ours["prediction"]
    other = next(label for label in prediction.probabilities if label != prediction.predicted_label)
    api = _session_client(viewer)
    assert api.get(_urls(ours)["overlay"]).status_code == 200
    assert api.get(_urls(ours)["preview"]).status_code == 200
    assert api.get(_urls(theirs)["overlay"]).status_code == 404
    refused = api.post(_urls(ours)["explain"], {"label": other}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    read_key = _key_client(api_key_for(org, scope="read"))
    assert read_key.get(_urls(ours)["overlay"]).status_code == 200
    assert read_key.post(_urls(ours)["explain"], {"label": other}, format="json").status_code == 403

    client.force_login(viewer)
    web = client.post(reverse("imaging:prediction-explain", kwargs={"pk": prediction.pk}), {"label": other})
    assert web.status_code == 403
    assert not Explanation.objects.filter(label=other).exists()
    page = client.get(reverse("imaging:study-detail", kwargs={"pk": ours["study"].pk})).content.decode()
    assert "Explain class" not in page and reverse("imaging:prediction-explain", kwargs={"pk": prediction.pk}) \
        not in page
    assert reverse("imaging:explanation-overlay", kwargs={"pk": ours["explanation"].pk}) in page  # still sees it


def test_other_organisation_gets_404_on_every_new_endpoint(org, other_org, other_owner, api_key_for, ours, theirs):
    for client in (_key_client(api_key_for(other_org)), _session_client(other_owner)):
        for name, url in _urls(ours).items():
            response = client.post(url, {"label": "lesion"}, format="json") if name == "explain" else client.get(url)
            assert response.status_code == 404, (name, response.status_code)
            assert response.json()["error"]["code"] == "not_found", name
        for name, url in _urls(theirs).items():  # their own objects do resolve
            response = client.post(url, {"label": "lesion"}, format="json") if name == "explain" else client.get(url)
            assert response.status_code in (200, 202), (name, response.status_code)
    assert not AuditEvent.objects.filter(organization=org, verb__in=PHI_VERBS).exists()
    assert not Explanation.objects.filter(image=ours["image"]).exclude(pk=ours["explanation"].pk).exists()


def test_openapi_schema_lists_the_download_endpoints(client):
    schema = client.get("/api/schema/").content.decode()
    for path in ("/api/v1/imaging/explanations/{id}/overlay/", "/api/v1/imaging/images/{id}/preview/",
                 "/api/v1/imaging/images/{id}/original/", "/api/v1/imaging/studies/{id}/report/",
                 "/api/v1/imaging/predictions/{id}/explain/"):
        assert path in schema, path
    assert "application/pdf" in schema and "image/png" in schema
