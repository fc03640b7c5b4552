"""Celery application. Queues by resource class: `default` (CPU, I/O) and `gpu` (model inference)."""

import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("lumen")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="default",
    task_queues=[Queue("default"), Queue("gpu")],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # A lost worker must not take a GPU job's message with it: ack only after the task body returns.
    task_track_started=False,
)
app.autodiscover_tasks()


@app.task(name="platform.ping", ignore_result=False, queue="default")
def ping(*, value: int) -> dict:
    """Round-trip probe used by the integration tests and operators: echoes the value with the host."""
    import socket

    return {"value": value, "host": socket.gethostname(), "pid": os.getpid()}


@signals.worker_ready.connect
def _worker_ready(sender=None, **kwargs) -> None:
    from accounts.health import start_heartbeat

    # The sender is the worker's consumer; consume_from holds the queues it was started with (-Q).
    consume_from = sender.app.amqp.queues.consume_from if sender is not None else None
    queues = list(consume_from or {})
    start_heartbeat(hostname=getattr(sender, "hostname", None), queues=queues)


@signals.worker_shutting_down.connect
def _worker_shutting_down(**kwargs) -> None:
    from accounts.health import stop_heartbeat

    stop_heartbeat()
