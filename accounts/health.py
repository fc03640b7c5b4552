"""/healthz and the worker heartbeat it reads. Works the same with the file-system broker and Redis."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from accounts.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return {"ok": False, "error": str(exc)[:200]}


def _check_broker() -> dict:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "transport": conn.transport_cls if isinstance(conn.transport_cls, str) else "ok"}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": str(exc)[:200]}


def live_workers() -> list[WorkerHeartbeat]:
    cutoff = timezone.now() - timedelta(seconds=settings.CELERY_WORKER_STALE_SECONDS)
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=cutoff).order_by("hostname"))


@never_cache
def healthz(request):
    database = _check_database()
    broker = _check_broker()
    workers = live_workers() if database["ok"] else []
    healthy = database["ok"] and broker["ok"] and len(workers) > 0
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "broker": broker,
        "workers": {"live": len(workers), "hosts": [{"hostname": w.hostname, "queues": w.queues} for w in workers]},
    }
    return JsonResponse(body, status=200 if healthy else 503)


class WorkerHeartbeatThread(threading.Thread):
    """Runs in the worker's main process: refreshes this worker's row until stopped."""

    def __init__(self, *, hostname: str, queues: str) -> None:
        super().__init__(name="worker-heartbeat", daemon=True)
        self.hostname = hostname
        self.queues = queues
        self.stopped = threading.Event()

    def beat(self) -> None:
        close_old_connections()
        WorkerHeartbeat.objects.update_or_create(
            hostname=self.hostname,
            defaults={"queues": self.queues, "pid": os.getpid(), "last_seen": timezone.now()},
        )

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.beat()
            except Exception:  # the database may be briefly unavailable; try again next beat
                logger.warning("worker heartbeat failed", exc_info=True)
            self.stopped.wait(settings.CELERY_WORKER_HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self.stopped.set()
        try:
            close_old_connections()
            WorkerHeartbeat.objects.filter(hostname=self.hostname).delete()
        except Exception:
            logger.warning("could not remove worker heartbeat", exc_info=True)


_heartbeat: WorkerHeartbeatThread | None = None


def start_heartbeat(*, hostname: str | None, queues: list[str]) -> None:
    global _heartbeat
    _heartbeat = WorkerHeartbeatThread(hostname=hostname or socket.gethostname(), queues=",".join(sorted(queues)))
    _heartbeat.beat()
    _heartbeat.start()


def stop_heartbeat() -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
