"""Flow tests: real services, task bodies (eager), the tiny models and files on disk, from upload to results."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from imaging.models import AnalysisJob, Explanation, Image, JobStatus, Prediction, SeriesPrediction, Study
from subscriptions.models import UsageEntry
from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db


def _api(org, api_key_for):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    return client


def _post(client, files, **extra):
    return client.post("/api/v1/imaging/studies/", {"files": files, **extra}, format="multipart")


def _usage(org, state):
    return sum(UsageEntry.objects.filter(organization=org, state=state).values_list("quantity", flat=True))


def test_upload_analyses_every_accepted_file_and_rejects_the_bad_ones(
        org, other_org, api_key_for, tiny_models, django_capture_on_commit_callbacks):
    series = [upload(f"slice{i}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(fx.ct_series(count=4))]
    files = [upload("chest.png", fx.png_bytes(size=(40, 32))), upload("photo.jpg", fx.jpeg_bytes(size=(40, 32))),
             upload("report.pdf", fx.pdf_bytes()), upload("empty.png", b""), upload("bomb.png", fx.bomb_png()),
             upload("report.dcm", fx.dicom_bytes(fx.report_dataset())),
             upload("series.zip", fx.zip_bytes({"a/one.png": fx.png_bytes(mode="I;16"), "../evil.png": b"x"})),
             *series]
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(_api(org, api_key_for), files)
    assert response.status_code == 201, response.content
    body = response.json()
    by_name = {f["name"]: f for f in body["files"]}
    assert by_name["chest.png"]["status"] == "accepted"
    assert by_name["photo.jpg"]["status"] == "accepted"
    assert by_name["series.zip/a/one.png"]["status"] == "accepted"
    for name, code in [("report.pdf", "unsupported_type"), ("empty.png", "empty"), ("bomb.png", "too_many_pixels"),
                       ("report.dcm", "no_pixel_data"), ("series.zip/../evil.png", "path_traversal")]:
        assert by_name[name]["status"] == "rejected", name
        assert by_name[name]["code"] == code, (name, by_name[name])
        assert by_name[name]["message"].split(":")[0] in name
    assert "PDF" in by_name["report.pdf"]["message"]

    studies = Study.objects.filter(organization=org)
    assert studies.count() == 2  # the plain images together, the CT series by its (de-identified) UID
    plain = studies.get(study_instance_uid="")
    ct = studies.exclude(study_instance_uid="").get()
    assert plain.image_count == 3 and ct.image_count == 4
    assert ct.study_instance_uid != fx.STUDY_UID
    assert len(body["jobs"]) == 2

    for job in AnalysisJob.objects.filter(organization=org):
        assert job.status == JobStatus.SUCCEEDED, job.error_message
        assert job.images_done == job.images_total
        assert job.quota_settled == "committed"
        predictions = Prediction.objects.filter(job=job)
        assert predictions.count() == job.images_total
        for prediction in predictions:
            assert abs(sum(prediction.probabilities.values()) - 1) < 1e-4
            assert prediction.model_sha256 == tiny_models["image"].sha256
            overlay = Explanation.objects.get(job=job, image=prediction.image, source="image")
            assert overlay.label == prediction.predicted_label
            assert default_storage.exists(overlay.overlay)
    ct_job = AnalysisJob.objects.get(study=ct)
    assert AnalysisJob.objects.get(study=plain).series_model is None  # unrelated images are not a volume
    assert not SeriesPrediction.objects.filter(job__study=plain).exists()
    series_prediction = SeriesPrediction.objects.get(job=ct_job)
    assert len(series_prediction.slice_attention) == 4
    assert abs(sum(w for _, w in series_prediction.slice_attention) - 1) < 1e-4
    assert Explanation.objects.filter(job=ct_job, source="series").count() == 3
    # slices are ordered by position along the slice normal, not by upload order
    positions = list(Image.objects.filter(study=ct).order_by("slice_position").values_list("instance_number",
                                                                                             flat=True))
    assert positions == [1, 2, 3, 4]
    assert _usage(org, "committed") == 7 and _usage(org, "reserved") == 7
    # the other organisation sees none of it
    other = _api(other_org, api_key_for)
    assert other.get("/api/v1/imaging/studies/").json()["count"] == 0
    assert other.get(f"/api/v1/imaging/jobs/{ct_job.pk}/").status_code == 404


def test_job_json_has_probabilities_explanations_model_card_and_is_audited(
        org, api_key_for, tiny_models, django_capture_on_commit_callbacks):
    from accounts.models import AuditEvent

    client = _api(org, api_key_for)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = _post(client, [upload("a.png", fx.png_bytes())]).json()["jobs"][0]["id"]
    body = client.get(f"/api/v1/imaging/jobs/{job_id}/").json()
    assert body["status"] == "succeeded" and body["images_done"] == 1
    [prediction] = body["predictions"]
    assert set(prediction["probabilities"]) == {"lesion", "no_lesion"}
    assert prediction["explanations"][0]["label"] == prediction["predicted_label"]
    assert body["model"]["sha256"] == tiny_models["image"].sha256 and body["model"]["is_demo"] is True
    assert "not for clinical use" in body["model"]["intended_use"]
    assert AuditEvent.objects.filter(organization=org, verb="imaging.result.view", target_id=str(job_id)).exists()


def test_all_files_rejected_is_a_400_with_each_reason(org, api_key_for, tiny_models):
    response = _post(_api(org, api_key_for), [upload("notes.txt", b"hello"), upload("x.zip", b"PK\x03\x04junk")])
    assert response.status_code == 400
    files = response.json()["error"]["details"]["files"]
    assert [f["status"] for f in files] == ["rejected", "rejected"]
    assert all(f["message"] for f in files)
    assert not Study.objects.filter(organization=org).exists()


def test_task_is_idempotent_and_charges_quota_once(org, owner, tiny_models, django_capture_on_commit_callbacks):
    from imaging.tasks import analyze_study
    from imaging.uploads import study_upload

    with django_capture_on_commit_callbacks(execute=True):
        result = study_upload(organization=org, uploaded_by=owner, files=[upload("a.png", fx.png_bytes()),
                                                                          upload("b.png", fx.png_bytes(mode="RGB"))])
    job = result.jobs[0]
    analyze_study(job_id=job.pk)  # a redelivered message
    analyze_study(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert Prediction.objects.filter(job=job).count() == 2
    assert _usage(org, "committed") == 2


def test_killed_worker_mid_job_is_requeued_and_finishes_without_double_work(
        org, owner, tiny_models, django_capture_on_commit_callbacks):
    from imaging import pipeline, services
    from imaging.tasks import analyze_study
    from imaging.uploads import study_upload

    files = [upload(f"{i}.png", fx.png_bytes(size=(30 + i, 20))) for i in range(6)]
    result = study_upload(organization=org, uploaded_by=owner, files=files)  # on_commit not run: message "lost"
    job = result.jobs[0]
    services.analysis_job_start(job_id=job.pk)
    # the worker wrote the first batch (4 of 6), then died
    real_progress = pipeline.analysis_job_progress
    calls = []

    def die_after_first_batch(**kwargs):
        calls.append(kwargs)
        real_progress(**kwargs)
        raise KeyboardInterrupt("worker killed")

    pipeline.analysis_job_progress = die_after_first_batch
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_job(job_id=job.pk)
    finally:
        pipeline.analysis_job_progress = real_progress
    assert Prediction.objects.filter(job=job).count() == 4
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.images_done == 4
    assert services.jobs_requeue_stuck(older_than_seconds=3600) == {"requeued": 0, "failed": 0}  # not stuck yet
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_requeue_stuck(older_than_seconds=0)["requeued"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.enqueue_count == 2
    assert Prediction.objects.filter(job=job).count() == 6
    analyze_study(job_id=job.pk)
    assert _usage(org, "committed") == 6



def _past_the_stuck_timeout(job, field):
    """Move `field` of `job` back past IMAGING_STUCK_JOB_SECONDS, as if that long had passed since."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    when = timezone.now() - timedelta(seconds=settings.IMAGING_STUCK_JOB_SECONDS + 60)
    AnalysisJob.objects.filter(pk=job.pk).update(**{field: when})


def test_a_job_queued_behind_a_long_backlog_is_sent_again_but_never_failed_and_then_runs(
        org, owner, other_org, other_owner, tiny_models, settings, django_capture_on_commit_callbacks):
    from imaging import services
    from imaging.uploads import study_upload

    files = [upload(f"{i}.png", fx.png_bytes(size=(30 + i, 20))) for i in range(3)]
    job = study_upload(organization=org, uploaded_by=owner, files=files).jobs[0]  # on_commit not run: still queued
    theirs = study_upload(organization=other_org, uploaded_by=other_owner,
                          files=[upload("b.png", fx.png_bytes())]).jobs[0]
    theirs.refresh_from_db()
    assert (job.status, theirs.status) == (JobStatus.QUEUED, JobStatus.QUEUED)
    sweeps = 3 * (settings.IMAGING_MAX_REQUEUES + 1)  # hours behind busy workers, far more sweeps than the limit
    messages = []
    for _ in range(sweeps):
        _past_the_stuck_timeout(job, "queued_at")
        with django_capture_on_commit_callbacks() as sent:
            assert services.jobs_requeue_stuck() == {"requeued": 1, "failed": 0}  # in case its message was lost
            assert services.jobs_requeue_stuck() == {"requeued": 0, "failed": 0}  # one re-send per timeout window
        messages += sent
    assert len(messages) == sweeps
    job.refresh_from_db()
    assert (job.status, job.error_message) == (JobStatus.QUEUED, "")
    assert (job.interrupt_count, job.enqueue_count) == (0, 1 + sweeps)
    assert _usage(org, "released") == 0
    # the other organisation's queued job is within the timeout: neither sent again nor counted
    untouched = AnalysisJob.objects.get(pk=theirs.pk)
    assert (untouched.status, untouched.enqueue_count, untouched.queued_at) == (JobStatus.QUEUED, 1, theirs.queued_at)

    # The workers catch up: the first copy runs the job, every later copy finds it no longer queued and does nothing.
    with django_capture_on_commit_callbacks(execute=True):
        for message in messages:
            message()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert Prediction.objects.filter(job=job).count() == 3 and _usage(org, "committed") == 3
    assert AnalysisJob.objects.get(pk=theirs.pk).status == JobStatus.QUEUED
    assert not Prediction.objects.filter(job=theirs).exists() and _usage(other_org, "committed") == 0


def test_a_running_job_without_progress_fails_after_the_limit_but_never_for_waiting_in_the_queue_again(
        org, owner, other_org, other_owner, tiny_models, settings, django_capture_on_commit_callbacks):
    from imaging import services
    from imaging.uploads import study_upload

    job = study_upload(organization=org, uploaded_by=owner, files=[upload("a.png", fx.png_bytes())]).jobs[0]
    theirs = study_upload(organization=other_org, uploaded_by=other_owner,
                          files=[upload("b.png", fx.png_bytes())]).jobs[0]
    services.analysis_job_start(job_id=theirs.pk)  # on a worker, progressing: never stuck
    for interruption in range(1, settings.IMAGING_MAX_REQUEUES + 1):
        services.analysis_job_start(job_id=job.pk)  # a worker takes it ...
        _past_the_stuck_timeout(job, "progress_at")  # ... and is killed
        with django_capture_on_commit_callbacks() as sent:
            assert services.jobs_requeue_stuck() == {"requeued": 1, "failed": 0}
        assert len(sent) == 1
        job.refresh_from_db()
        assert (job.status, job.interrupt_count) == (JobStatus.QUEUED, interruption)
        for _ in range(settings.IMAGING_MAX_REQUEUES + 2):  # then it waits behind a backlog for over an hour
            _past_the_stuck_timeout(job, "queued_at")
            with django_capture_on_commit_callbacks():
                assert services.jobs_requeue_stuck() == {"requeued": 1, "failed": 0}
        job.refresh_from_db()
        assert (job.status, job.interrupt_count, job.error_message) == (JobStatus.QUEUED, interruption, "")

    services.analysis_job_start(job_id=job.pk)
    _past_the_stuck_timeout(job, "progress_at")  # one interruption more than the limit
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_requeue_stuck() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped responding several times" in job.error_message
    assert job.interrupt_count == settings.IMAGING_MAX_REQUEUES + 1
    assert _usage(org, "released") == 1 and _usage(org, "committed") == 0
    untouched = AnalysisJob.objects.get(pk=theirs.pk)
    assert (untouched.status, untouched.interrupt_count, untouched.enqueue_count) == (JobStatus.RUNNING, 0, 1)
    assert _usage(other_org, "released") == 0

def test_cancel_releases_quota_and_the_task_then_does_nothing(org, owner, tiny_models):
    from imaging import services
    from imaging.tasks import analyze_study
    from imaging.uploads import study_upload

    job = study_upload(organization=org, uploaded_by=owner, files=[upload("a.png", fx.png_bytes())]).jobs[0]
    services.analysis_job_cancel(organization=org, job=job, actor=owner)
    analyze_study(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not Prediction.objects.filter(job=job).exists()
    assert _usage(org, "released") == 1 and _usage(org, "committed") == 0
    from accounts.exceptions import Conflict

    with pytest.raises(Conflict):
        services.analysis_job_cancel(organization=org, job=job, actor=owner)


def test_failed_job_says_what_to_do_releases_quota_and_retry_is_a_new_attempt(
        org, owner, api_key_for, tiny_models, tiny_model_dirs, django_capture_on_commit_callbacks):
    from imaging.ml.runtime import clear_model_cache
    from imaging.uploads import study_upload

    weights = tiny_model_dirs["image"] / "weights.pt"
    original = weights.read_bytes()
    clear_model_cache()
    weights.write_bytes(original + b"tampered")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = study_upload(organization=org, uploaded_by=owner, files=[upload("a.png", fx.png_bytes())]).jobs[0]
    finally:
        weights.write_bytes(original)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "could not be loaded" in job.error_message and "retry" in job.error_message
    assert _usage(org, "released") == 1
    client = _api(org, api_key_for)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/imaging/jobs/{job.pk}/retry/")
    assert response.status_code == 201
    retry = AnalysisJob.objects.get(pk=response.json()["id"])
    assert retry.attempt == 2 and retry.retry_of == job and retry.status == JobStatus.SUCCEEDED
    assert client.post(f"/api/v1/imaging/jobs/{job.pk}/retry/").status_code == 409
    assert _usage(org, "committed") == 1


def test_no_model_installed_keeps_the_images_and_says_what_to_do(org, api_key_for, db):
    response = _post(_api(org, api_key_for), [upload("a.png", fx.png_bytes())])
    assert response.status_code == 503
    assert "build_demo_imaging_models" in response.json()["error"]["message"]
    assert Image.objects.filter(organization=org).count() == 1


def test_feedback_is_stored_per_image(org, clinician, tiny_models, django_capture_on_commit_callbacks):
    from imaging.models import Feedback

    client = APIClient()
    client.force_login(clinician)
    with django_capture_on_commit_callbacks(execute=True):
        body = _post(client, [upload("a.png", fx.png_bytes())]).json()
    image_id = body["files"][0]["image_ids"][0]
    url = f"/api/v1/imaging/images/{image_id}/feedback/"
    bad = client.post(url, {"is_correct": False, "correct_label": "tumour"}, format="json")
    assert bad.status_code == 400 and "lesion" in bad.json()["error"]["message"]
    ok = client.post(url, {"is_correct": False, "correct_label": "lesion", "comment": "small nodule"}, format="json")
    assert ok.status_code == 200
    client.post(url, {"is_correct": True}, format="json")
    feedback = Feedback.objects.get(image_id=image_id)
    assert feedback.is_correct and feedback.author == clinician



def test_quota_reached_keeps_the_images_and_says_what_to_do(org, api_key_for, tiny_models):
    response = _post(_api(org, api_key_for), [upload(f"{i}.png", fx.png_bytes(size=(8 + i, 8))) for i in range(51)])
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and "Upgrade" in error["message"]
    assert len(error["details"]["files"]) == 51
    assert Image.objects.filter(organization=org).count() == 51
    assert not AnalysisJob.objects.filter(organization=org).exists()
    assert _usage(org, "reserved") == 0


def test_web_process_modules_never_import_torch():
    import subprocess
    import sys

    code = ("import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings.test'); "
            "django.setup(); import imaging.urls, imaging.api_urls, imaging.tasks, imaging.views, imaging.reports; "
            "from django.urls import resolve; resolve('/imaging/'); sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_worker_io_threads_follow_the_device_unless_set(settings, monkeypatch):
    import torch

    from imaging import pipeline

    settings.IMAGING_IO_THREADS = 0
    monkeypatch.setattr(pipeline, "select_device", lambda: torch.device("cuda"))
    assert pipeline.io_threads() == 4  # next to a GPU decoding and encoding are the limit
    monkeypatch.setattr(pipeline, "select_device", lambda: torch.device("cpu"))
    assert pipeline.io_threads() == 2  # on CPU the model's own threads already use every core
    settings.IMAGING_IO_THREADS = 3
    assert pipeline.io_threads() == 3
