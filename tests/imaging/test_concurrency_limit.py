"""The plan's "maximum concurrent jobs" is how many analyses RUN at once: a new analysis beyond it WAITS (quota
reserved, nothing on the broker) and starts, oldest first, when one of the organisation's queued or running analyses
leaves its slot, or when the beat sweep finds a free slot. Nothing is refused, and other organisations' jobs never
count."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imaging import services
from imaging.models import AnalysisJob, JobStatus, Prediction, Study
from imaging.tasks import analyze_study
from imaging.tasks import jobs_requeue_stuck as beat_sweep
from imaging.uploads import study_upload
from subscriptions.models import UsageEntry, UsageState
from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload
from tests.subscriptions.factories import put_on_plan

pytestmark = pytest.mark.django_db

FREE_WAITING = "Waiting: your Free plan runs 1 analysis at a time; this one starts when one finishes."


def _upload(org, user, *seeds: int) -> list[AnalysisJob]:
    """One PNG per seed, each uploaded on its own (one study, one job each). on_commit callbacks are not run here
    (the test's transaction never commits), so nothing reaches a worker unless a test runs the callbacks."""
    jobs = []
    for seed in seeds:
        result = study_upload(organization=org, uploaded_by=user, files=[upload(f"{seed}.png", fx.png_bytes(
            size=(32 + seed, 32)))])
        assert not result.errors, [e.message for e in result.errors]
        jobs.extend(result.jobs)
    return jobs


def _status(*jobs: AnalysisJob) -> list[str]:
    return [AnalysisJob.objects.get(pk=j.pk).status for j in jobs]


def _usage(org, state: str, job: AnalysisJob | None = None) -> int:
    rows = UsageEntry.objects.filter(organization=org, state=state)
    if job is not None:
        rows = rows.filter(job_ref=f"imaging.analysisjob:{job.pk}")
    return sum(rows.values_list("quantity", flat=True))


@pytest.fixture
def busy_neighbour(other_org, other_owner, tiny_models):
    """Another organisation on Free with one analysis queued and one waiting: neither may count for `org`."""
    queued, waiting = _upload(other_org, other_owner, 90, 91)
    assert _status(queued, waiting) == [JobStatus.QUEUED, JobStatus.WAITING]
    return queued, waiting


def test_on_free_a_second_study_waits_then_runs_when_the_first_succeeds(
        org, owner, busy_neighbour, tiny_models, django_capture_on_commit_callbacks):
    series = [upload(f"slice{i}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(fx.ct_series(count=4))]
    with django_capture_on_commit_callbacks() as enqueued:  # one drag-and-drop: a CT series and a photo
        result = study_upload(organization=org, uploaded_by=owner, files=[*series, upload("chest.png", fx.png_bytes())])
    assert result.errors == [] and len(result.jobs) == 2  # nothing refused
    first, second = sorted(result.jobs, key=lambda j: j.pk)
    assert (first.status, second.status) == (JobStatus.QUEUED, JobStatus.WAITING)
    assert len(enqueued) == 1  # only the queued one goes to the broker
    assert (first.enqueue_count, second.enqueue_count) == (1, 0)
    assert _usage(org, UsageState.RESERVED, second) == second.images_total  # its quota is reserved while it waits

    analyze_study(job_id=second.pk)  # a stray message for a waiting job starts nothing
    assert _status(second) == [JobStatus.WAITING] and not Prediction.objects.filter(job=second).exists()

    with django_capture_on_commit_callbacks(execute=True) as started:
        enqueued[0]()  # the broker delivers the first: the task body runs for real and succeeds ...
        assert _status(first, second) == [JobStatus.SUCCEEDED, JobStatus.QUEUED]  # ... which queues the second
    assert len(started) == 1  # the second's enqueue, run on commit: it ran too
    second.refresh_from_db()
    assert second.status == JobStatus.SUCCEEDED, second.error_message
    assert second.enqueue_count == 1 and Prediction.objects.filter(job=second).count() == second.images_total
    assert _usage(org, UsageState.COMMITTED) == first.images_total + second.images_total
    # the other organisation's analyses were neither counted nor started
    assert _status(*busy_neighbour) == [JobStatus.QUEUED, JobStatus.WAITING]


@pytest.mark.parametrize("leave", ["fail", "cancel"])
def test_a_job_that_fails_or_is_cancelled_frees_its_slot_for_the_oldest_waiting_one(
        org, owner, busy_neighbour, tiny_models, leave, django_capture_on_commit_callbacks):
    first, older, newer = _upload(org, owner, 1, 2, 3)
    assert _status(first, older, newer) == [JobStatus.QUEUED, JobStatus.WAITING, JobStatus.WAITING]
    services.analysis_job_start(job_id=first.pk)
    with django_capture_on_commit_callbacks() as enqueued:
        if leave == "fail":
            services.analysis_job_fail(job_id=first.pk, message="The scan could not be read.")
        else:
            services.analysis_job_cancel(organization=org, job=first, actor=owner)
    left = {"fail": JobStatus.FAILED, "cancel": JobStatus.CANCELLED}[leave]
    # the oldest waiting one starts, and only as many as slots are free
    assert _status(first, older, newer) == [left, JobStatus.QUEUED, JobStatus.WAITING]
    assert len(enqueued) == 1
    assert _usage(org, UsageState.RELEASED, first) == 1
    assert _status(*busy_neighbour) == [JobStatus.QUEUED, JobStatus.WAITING]


def test_cancelling_a_waiting_job_releases_its_quota_and_it_never_runs(
        org, owner, busy_neighbour, tiny_models, django_capture_on_commit_callbacks):
    first, waiting = _upload(org, owner, 1, 2)
    assert _usage(org, UsageState.RESERVED, waiting) == 1 and _usage(org, UsageState.RELEASED, waiting) == 0
    with django_capture_on_commit_callbacks() as enqueued:
        cancelled = services.analysis_job_cancel(organization=org, job=waiting, actor=owner)
    assert cancelled.status == JobStatus.CANCELLED and "quota was given back" in cancelled.error_message
    assert _usage(org, UsageState.RELEASED, waiting) == 1
    assert enqueued == [] and _status(first) == [JobStatus.QUEUED]  # the slot was never its to give

    with django_capture_on_commit_callbacks(execute=True) as ran:
        analyze_study(job_id=first.pk)  # the first runs and finishes: nothing is left waiting to start
    assert ran == [] and _status(first, waiting) == [JobStatus.SUCCEEDED, JobStatus.CANCELLED]
    assert not Prediction.objects.filter(job=waiting).exists()
    assert _usage(org, UsageState.COMMITTED) == 1  # the cancelled one is never charged


def test_the_sweeper_starts_a_waiting_job_only_when_a_slot_is_free_and_never_requeues_or_fails_one_for_age(
        org, owner, busy_neighbour, tiny_models, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    first, waiting = _upload(org, owner, 1, 2)
    long_ago = timezone.now() - timedelta(days=2)  # far beyond IMAGING_STUCK_JOB_SECONDS
    AnalysisJob.objects.filter(pk=waiting.pk).update(created_at=long_ago, queued_at=long_ago)

    with django_capture_on_commit_callbacks() as enqueued:
        assert beat_sweep() == {"requeued": 0, "failed": 0, "started": 0}  # the first still holds the only slot
        # with a zero timeout every queued job looks stuck (ours and the neighbour's), a waiting one never does: it
        # waits for a slot, not for a worker
        assert services.jobs_requeue_stuck(older_than_seconds=0) == {"requeued": 2, "failed": 0}
    assert len(enqueued) == 2
    untouched = AnalysisJob.objects.get(pk=waiting.pk)
    assert (untouched.status, untouched.enqueue_count, untouched.queued_at) == (JobStatus.WAITING, 0, long_ago)

    # The first finished but the transaction that should have started the next one was lost (a crash): only the
    # sweep can notice. The neighbour's waiting job stays put: its own slot is still taken.
    AnalysisJob.objects.filter(pk=first.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        assert beat_sweep() == {"requeued": 0, "failed": 0, "started": 1}
        assert _status(waiting) == [JobStatus.QUEUED]
    assert len(enqueued) == 1  # its enqueue, run for real: the analysis ran
    assert _status(waiting) == [JobStatus.SUCCEEDED]
    assert AnalysisJob.objects.get(pk=waiting.pk).queued_at > long_ago  # its age as a queued job starts now
    assert _status(*busy_neighbour) == [JobStatus.QUEUED, JobStatus.WAITING]


def test_a_bigger_plan_runs_more_at_once_and_an_upgrade_starts_the_waiting_ones_first(
        org, owner, tiny_models, django_capture_on_commit_callbacks):
    put_on_plan(org, "starter")  # two at a time
    jobs = _upload(org, owner, 1, 2, 3, 4)
    assert _status(*jobs) == [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.WAITING, JobStatus.WAITING]

    put_on_plan(org, "pro")  # five at a time: the next new analysis may not overtake the two that wait
    with django_capture_on_commit_callbacks() as enqueued:
        [fifth] = _upload(org, owner, 5)
        [sixth] = _upload(org, owner, 6)
    assert _status(*jobs, fifth, sixth) == [JobStatus.QUEUED] * 5 + [JobStatus.WAITING]
    assert len(enqueued) == 3  # the two that waited, then the fifth


def test_the_api_shows_waiting_and_cancels_and_retries_without_refusing(
        org, owner, other_org, api_key_for, busy_neighbour, tiny_models):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    series = [upload(f"s{i}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(fx.ct_series(count=3))]
    response = client.post("/api/v1/imaging/studies/", {"files": [*series, upload("a.png", fx.png_bytes())]},
                           format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert sorted(j["status"] for j in body["jobs"]) == ["queued", "waiting"] and body["errors"] == []
    waiting_id = next(j["id"] for j in body["jobs"] if j["status"] == "waiting")
    job = client.get(f"/api/v1/imaging/jobs/{waiting_id}/").json()
    assert job["status"] == "waiting" and job["started_at"] is None and job["predictions"] == []
    studies = {s["latest_job_id"]: s for s in client.get("/api/v1/imaging/studies/").json()["results"]}
    assert studies[waiting_id]["latest_job_status"] == "waiting"

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(other_org, scope='write')}")
    assert other.get(f"/api/v1/imaging/jobs/{waiting_id}/").status_code == 404
    assert other.post(f"/api/v1/imaging/jobs/{waiting_id}/cancel/").status_code == 404

    cancel = client.post(f"/api/v1/imaging/jobs/{waiting_id}/cancel/")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    retry = client.post(f"/api/v1/imaging/jobs/{waiting_id}/retry/")  # the slot is still taken: it waits again
    assert retry.status_code == 201 and retry.json()["status"] == "waiting" and retry.json()["attempt"] == 2


def test_the_study_page_says_it_waits_why_and_keeps_polling(client, org, owner, other_org, other_owner, tiny_models):
    first, next_up, behind = _upload(org, owner, 1, 2, 3)
    client.force_login(owner)
    study = Study.objects.get(pk=next_up.study_id)
    page = client.get(reverse("imaging:study-detail", kwargs={"pk": study.pk})).content.decode()
    assert FREE_WAITING in page and "It is next in line." in page
    assert 'data-polling="true"' in page and 'data-job-status="waiting"' in page
    assert reverse("imaging:job-cancel", kwargs={"pk": next_up.pk}) in page
    partial = client.get(reverse("imaging:study-results", kwargs={"pk": behind.study_id})).content.decode()
    assert "It is number 2 in line." in partial and 'hx-trigger="every 2s"' in partial
    assert "Waiting" in client.get(reverse("imaging:index")).content.decode()  # the list's badge
    listed = client.get(reverse("imaging:index") + "?status=waiting").content.decode()
    url = lambda job: reverse("imaging:study-detail", kwargs={"pk": job.study_id})  # noqa: E731
    assert url(next_up) in listed and url(behind) in listed and url(first) not in listed

    put_on_plan(org, "starter")  # the words follow the plan (the next sweep or finish would start it)
    page = client.get(reverse("imaging:study-detail", kwargs={"pk": study.pk})).content.decode()
    assert "your Starter plan runs 2 analyses at a time" in page

    response = client.post(reverse("imaging:job-cancel", kwargs={"pk": next_up.pk}), follow=True)
    assert "Analysis cancelled; the reserved quota was given back." in response.content.decode()
    assert _status(next_up) == [JobStatus.CANCELLED]

    # another organisation's waiting study is a 404 here
    [foreign] = _upload(other_org, other_owner, 9)
    assert client.get(reverse("imaging:study-detail", kwargs={"pk": foreign.study_id})).status_code == 404
