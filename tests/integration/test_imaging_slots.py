"""Concurrent-analysis slots under real concurrency on PostgreSQL: analyses created, finished, cancelled and swept at
the same instant never fill a slot twice, never leave a free slot while one waits, never enqueue a job twice and
never deadlock. Each thread has its own connection and no tenant scope (as a worker has none)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

ROUNDS = 5


@pytest.fixture
def setup(transactional_db, monkeypatch, tmp_path):
    from imaging import services
    from subscriptions.models import Plan
    from subscriptions.services import plan_catalogue_seed
    from tests.imaging.tiny_models import save_tiny_models

    plan_catalogue_seed()  # a transactional test starts from a flushed database
    assert Plan.objects.get(code="starter").max_concurrent_jobs == 2
    dirs = save_tiny_models(tmp_path / "models")
    services.model_register(model_dir=dirs["image"])
    enqueued: list[int] = []
    lock = threading.Lock()

    def record(job_id: int) -> None:  # what would go to the broker; no worker runs here
        with lock:
            enqueued.append(job_id)

    monkeypatch.setattr(services, "_enqueue", record)
    return enqueued


def _org_on_starter(name: str):
    from django_scopes import scope

    from imaging.models import Image, Series, Study
    from subscriptions.services import subscription_plan_assign
    from tests.accounts.factories import OrganizationFactory

    org = OrganizationFactory(name=name)
    subscription_plan_assign(organization=org, plan_code="starter", actor=None, reason="integration test")
    studies = []
    with scope(organization=org):
        for i in range(10):
            study = Study.objects.create(organization=org, title=f"study {i}", image_count=1)
            series = Series.objects.create(organization=org, study=study, image_count=1)
            image = Image.objects.create(organization=org, study=study, series=series, original_name=f"{i}.png",
                                         kind="png", file=f"x/{i}.png", preview=f"x/{i}p.png", sha256="0" * 64,
                                         width=8, height=8)
            studies.append((study, image))
    return org, studies


def _create(org, study_image):
    from django_scopes import scope

    from imaging.services import analysis_job_create

    study, image = study_image
    with scope(organization=org):  # as the request that creates it
        return analysis_job_create(organization=org, study=study, images=[image], requested_by=None)


def _at_once(*calls) -> list[str]:
    from django.db import connections

    barrier = threading.Barrier(len(calls))

    def one(call) -> str:
        try:
            barrier.wait(timeout=30)
            call()
            return "ok"
        except Exception as exc:  # a deadlock, a scope error, anything: report it
            return f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def _statuses(org) -> dict[int, str]:
    from imaging.models import AnalysisJob

    return dict(AnalysisJob.objects.filter(organization=org).order_by("pk").values_list("pk", "status"))


def test_simultaneous_new_analyses_fill_exactly_the_plans_slots(setup):
    org, studies = _org_on_starter("Burst Clinic")
    bystander, other_studies = _org_on_starter("Quiet Clinic")
    _create(bystander, other_studies[0])
    _create(bystander, other_studies[1])  # its two slots are full: they must not count for `org`
    setup.clear()

    results = _at_once(*[lambda s=s: _create(org, s) for s in studies])

    assert results == ["ok"] * len(studies)
    statuses = list(_statuses(org).values())
    assert statuses.count("queued") == 2 and statuses.count("waiting") == len(studies) - 2
    queued = [pk for pk, status in _statuses(org).items() if status == "queued"]
    assert sorted(setup) == sorted(queued)  # each queued job enqueued once; no waiting one enqueued


def test_finishing_cancelling_creating_and_sweeping_at_once_keeps_the_slots_exact(setup):
    for round_ in range(ROUNDS):  # several interleavings
        _race_round(f"Busy Clinic {round_}", enqueued=setup)


def _race_round(name: str, *, enqueued: list[int]) -> None:
    from functools import partial

    from imaging import services

    org, studies = _org_on_starter(name)
    running = [_create(org, studies[i]) for i in range(2)]
    waiting = [_create(org, studies[i]) for i in range(2, 6)]
    for job in running:
        services.analysis_job_start(job_id=job.pk)
    assert list(_statuses(org).values()) == ["running"] * 2 + ["waiting"] * 4
    enqueued.clear()

    results = _at_once(
        partial(services.analysis_job_succeed, job_id=running[0].pk),  # two workers finish at the same instant,
        partial(services.analysis_job_fail, job_id=running[1].pk, message="The scan could not be read."),
        partial(services.analysis_job_cancel, organization=org, job=waiting[2], actor=None),  # a user cancels,
        partial(_create, org, studies[6]),  # another uploads,
        services.analysis_jobs_start_waiting_all,  # and the beat sweep runs
    )

    assert results == ["ok"] * 5, results
    statuses = _statuses(org)
    assert [statuses[j.pk] for j in running] == ["succeeded", "failed"]
    # the two oldest waiting ones took the two free slots, whoever got the lock first
    assert [statuses[j.pk] for j in waiting] == ["queued", "queued", "cancelled", "waiting"]
    assert list(statuses.values()).count("waiting") == 2  # the fourth and the newly created one
    assert sorted(enqueued) == sorted(j.pk for j in waiting[:2]), "each started job is enqueued exactly once"
