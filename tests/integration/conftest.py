"""Integration tier: the scaled mode for real. PostgreSQL and Redis from the machine and Celery worker
subprocesses. `./dev test` runs this directory with DATABASE_URL / CELERY_BROKER_URL pointing at them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import ci_requires

ROOT = Path(__file__).resolve().parents[2]


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _scaled_mode_services():
    from django.conf import settings

    db = settings.DATABASES["default"]
    ci_requires("PostgreSQL", db["ENGINE"].endswith("postgresql"),
                "run the integration tier through ./dev test, which sets DATABASE_URL=postgres://...")
    ci_requires("PostgreSQL", _reachable(f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432),
                "nothing answers on the PostgreSQL port")
    broker = settings.CELERY_BROKER_URL
    ci_requires("Redis", broker.startswith("redis://"), "run through ./dev test, which sets CELERY_BROKER_URL=redis://")
    ci_requires("Redis", _reachable(broker, 6379), "nothing answers on the Redis port")
    # Eager tasks would run in this process and let every worker round trip pass without a worker.
    assert not settings.CELERY_TASK_ALWAYS_EAGER, "run the integration tier with CELERY_TASK_ALWAYS_EAGER=false"
    import redis

    redis.Redis.from_url(broker).flushdb()  # no stale messages from an earlier run


@pytest.fixture(scope="session")
def shared_media(tmp_path_factory):
    return tmp_path_factory.mktemp("integration-media")


@pytest.fixture(autouse=True)
def _media_root(settings, shared_media):
    settings.MEDIA_ROOT = shared_media


class WorkerProcess:
    """A real `celery worker` subprocess on the test database and broker."""

    def __init__(self, *, queues: str, media_root: Path, name: str) -> None:
        from django.db import connection

        db_url = os.environ["DATABASE_URL"]
        parsed = urlparse(db_url)
        test_db_url = parsed._replace(path="/" + connection.settings_dict["NAME"]).geturl()
        env = {**os.environ, "DATABASE_URL": test_db_url, "DJANGO_SETTINGS_MODULE": "config.settings.test",
               "MEDIA_ROOT": str(media_root), "CELERY_WORKER_HEARTBEAT_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
        self.hostname = f"{name}@{socket.gethostname()}"
        self.log = media_root / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--concurrency", "1",
             "--hostname", self.hostname, "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        from accounts.models import WorkerHeartbeat

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log.read_text()[-3000:]}")
            if WorkerHeartbeat.objects.filter(hostname=self.hostname).exists():
                return
            time.sleep(0.25)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def start_worker(shared_media):
    """Start workers on demand; every one is stopped at the end of the test."""
    workers: list[WorkerProcess] = []

    def start(*, queues: str = "default,gpu", name: str = "itworker") -> WorkerProcess:
        worker = WorkerProcess(queues=queues, media_root=shared_media, name=f"{name}{len(workers)}")
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker(start_worker):
    return start_worker()
