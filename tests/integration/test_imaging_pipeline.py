"""Integration: uploads analysed by a real Celery worker over Redis and PostgreSQL; a worker killed mid-job loses
nothing, the stuck-job sweeper re-enqueues it, and quota is charged exactly once."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from tests.imaging.conftest import upload
from tests.imaging.tiny_models import save_tiny_models

pytestmark = pytest.mark.integration


@pytest.fixture
def models(tmp_path):
    from imaging.services import model_register

    dirs = save_tiny_models(tmp_path / "models")  # registered by absolute path: the worker reads the same files
    return {task: model_register(model_dir=dirs[task]) for task in ("image", "series")}


@pytest.fixture
def pro_org(org):
    from subscriptions.services import plan_catalogue_seed, subscription_plan_assign

    plan_catalogue_seed()  # transactional tests flush the seeded plans between tests
    subscription_plan_assign(organization=org, plan_code="pro", actor=None, reason="integration test")
    return org


def _png(seed: int, size: int = 256) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _wait(job, *, until, timeout: float = 90.0, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.02)
    log = worker.log.read_text()[-3000:] if worker else ""
    raise AssertionError(f"job {job.pk} stuck in {job.status} ({job.images_done}/{job.images_total})\n{log}")


def _usage(org, state):
    from subscriptions.models import UsageEntry

    return list(UsageEntry.objects.filter(organization=org, state=state).values_list("quantity", flat=True))


def test_worker_analyses_an_upload_end_to_end(pro_org, owner, models, celery_worker):
    from imaging.models import Explanation, JobStatus, Prediction, SeriesPrediction
    from imaging.uploads import study_upload
    from tests.imaging import dicom_fixtures as fx

    files = [upload(f"s{i}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(fx.ct_series(count=4))]
    files.append(upload("chest.png", _png(1)))
    result = study_upload(organization=pro_org, uploaded_by=owner, files=files)
    assert len(result.jobs) == 2
    for job in result.jobs:
        _wait(job, until=lambda j: j.status not in ("waiting", "queued", "running"), worker=celery_worker)
        assert job.status == JobStatus.SUCCEEDED, job.error_message
        assert Prediction.objects.filter(job=job).count() == job.images_total
        assert Explanation.objects.filter(job=job, source="image").count() == job.images_total
    assert SeriesPrediction.objects.filter(job__in=result.jobs).count() == 1
    assert sorted(_usage(pro_org, "committed")) == [1, 4]


def test_worker_killed_mid_job_loses_nothing_and_charges_once(pro_org, owner, models, start_worker, monkeypatch):
    from imaging import services
    from imaging.models import JobStatus, Prediction
    from imaging.uploads import study_upload

    monkeypatch.setenv("IMAGING_BATCH_SIZE", "2")  # many small batches: a kill lands between two of them
    first = start_worker(queues="gpu", name="doomed")
    images = 120
    job = study_upload(organization=pro_org, uploaded_by=owner,
                       files=[upload(f"{i}.png", _png(i)) for i in range(images)]).jobs[0]
    _wait(job, until=lambda j: j.images_done >= 4, worker=first)
    first.stop(sig=signal.SIGKILL)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING, "the job finished before the worker was killed; add images"
    done_before = Prediction.objects.filter(job=job).count()
    assert 0 < done_before < images

    # beat's sweeper finds it (timeout 0 here instead of minutes) and a fresh worker finishes the job
    assert services.jobs_requeue_stuck(older_than_seconds=0)["requeued"] == 1
    second = start_worker(queues="gpu", name="rescuer")
    _wait(job, until=lambda j: j.status == JobStatus.SUCCEEDED, worker=second)
    assert Prediction.objects.filter(job=job).count() == images
    assert Prediction.objects.filter(job=job).values("image_id").distinct().count() == images
    assert _usage(pro_org, "committed") == [images] and _usage(pro_org, "released") == []
    # a late redelivery of the original message changes nothing
    from imaging.tasks import analyze_study

    analyze_study.apply_async(kwargs={"job_id": job.pk}, queue="gpu")
    time.sleep(1.0)
    assert _usage(pro_org, "committed") == [images]
