import signal
import time

import pytest

pytestmark = pytest.mark.integration


def test_round_trip_task_through_redis_and_a_real_worker(celery_worker):
    from config.celery import ping

    result = ping.delay(value=41)
    body = result.get(timeout=60)
    assert body["value"] == 41 and body["pid"] > 0


def test_database_is_postgresql(db):
    from django.db import connection

    assert connection.vendor == "postgresql"


def _wait_for_status(client, status, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/healthz")
        if response.status_code == status:
            return response.json()
        time.sleep(0.5)
    raise AssertionError(f"/healthz never returned {status}: {response.status_code} {response.content[:300]}")


def test_healthz_goes_503_when_the_worker_stops(client, start_worker):
    worker = start_worker()
    body = _wait_for_status(client, 200)
    assert body["database"]["ok"] and body["broker"]["ok"] and body["workers"]["live"] == 1
    assert body["workers"]["hosts"][0]["queues"] == "default,gpu"
    worker.stop(signal.SIGTERM)
    body = _wait_for_status(client, 503)
    assert body["workers"]["live"] == 0 and body["database"]["ok"] and body["broker"]["ok"]


def test_healthz_notices_a_killed_worker(client, start_worker, settings):
    settings.CELERY_WORKER_STALE_SECONDS = 3
    worker = start_worker()
    _wait_for_status(client, 200)
    worker.stop(signal.SIGKILL)  # no chance to clean up: the heartbeat just goes stale
    assert _wait_for_status(client, 503, timeout=20)["workers"]["live"] == 0
