"""Thin Celery tasks. The ML stack (torch) is imported inside task bodies only, so the web process never loads it."""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django_scopes import scope

from accounts.exceptions import ServiceError
from config.celery import app
from sentiment import alerts, feeds, services

logger = logging.getLogger(__name__)


@app.task(name="sentiment.score_batch", queue="gpu", acks_late=True, reject_on_worker_lost=True,
          soft_time_limit=settings.SENTIMENT_JOB_SOFT_TIME_LIMIT, time_limit=settings.SENTIMENT_JOB_TIME_LIMIT)
def score_batch(*, batch_id: int) -> None:
    """Score one batch. Safe to deliver twice: only a QUEUED batch starts, already scored documents are skipped."""
    try:
        model = services.model_resolve()
    except ServiceError as exc:
        services.batch_fail(batch_id=batch_id, message=exc.message, only_queued=True)
        return
    if model is None:
        services.batch_fail(batch_id=batch_id, message="No sentiment model is installed, so the texts were stored "
                            "but not scored. Ask an operator to run `./manage.py build_demo_sentiment_model` or "
                            "`./manage.py train_sentiment`, then import the texts again.", only_queued=True)
        return
    batch = services.batch_start(batch_id=batch_id, model=model)
    if batch is None:
        return
    try:
        from sentiment import pipeline
        from sentiment.ml.manifest import ModelLoadError

        try:
            touched = pipeline.run_batch(batch=batch, model=model)
        except ModelLoadError as exc:
            logger.error("sentiment batch %s: model failed to load: %s", batch_id, exc)
            services.batch_fail(batch_id=batch_id, message="The sentiment model could not be loaded (its files are "
                                "missing or do not match the registered checksum). Ask an operator to rebuild it.")
            return
    except SoftTimeLimitExceeded:
        services.batch_fail(batch_id=batch_id, message="Scoring took longer than "
                            f"{settings.SENTIMENT_JOB_SOFT_TIME_LIMIT // 60} minutes and was stopped; the texts scored "
                            "so far are kept. Import the rest in smaller files.")
        return
    except Exception:
        logger.exception("sentiment batch %s failed", batch_id)
        services.batch_fail(batch_id=batch_id, message=f"Scoring failed unexpectedly (batch {batch_id}); the texts "
                            "scored so far are kept. Import the rest again; if it fails again, contact support.")
        return
    services.batch_succeed(batch_id=batch_id)
    if touched:
        try:
            with scope(organization=batch.organization):
                alerts.alerts_evaluate(organization=batch.organization, keys=touched)
        except Exception:  # the scores are stored; a broken rule must not fail the batch
            logger.exception("sentiment batch %s: alert evaluation failed", batch_id)


@app.task(name="sentiment.batches_requeue_stuck", queue="default", acks_late=True, soft_time_limit=60, time_limit=90)
def batches_requeue_stuck() -> dict:
    """Beat: give batches lost with a message or a killed worker another run."""
    return services.batches_requeue_stuck()


@app.task(name="sentiment.feed_poll", queue="default", acks_late=True, soft_time_limit=180, time_limit=210)
def feed_poll(*, source_id: int) -> dict:
    return feeds.feed_poll(source_id=source_id)


@app.task(name="sentiment.feeds_poll_due", queue="default", acks_late=True, soft_time_limit=60, time_limit=90)
def feeds_poll_due() -> int:
    """Beat: queue a poll of every feed whose interval (or backoff) has passed, in every organisation."""
    due = feeds.feeds_claim_due()
    for source_id in due:
        feed_poll.apply_async(kwargs={"source_id": source_id}, queue="default")
    return len(due)


@app.task(name="sentiment.alert_deliver", bind=True, queue="default", acks_late=True, soft_time_limit=60,
          time_limit=90, max_retries=alerts.MAX_DELIVERY_ATTEMPTS - 1)
def alert_deliver(self, *, alert_id: int) -> int:
    """Deliver an alert; while a channel failed, retry with backoff (channels that succeeded are not sent again)."""
    deliveries = alerts.alert_deliver(alert_id=alert_id)
    if any(not d.ok for d in deliveries) and self.request.retries < self.max_retries:
        raise self.retry(countdown=alerts.delivery_retry_countdown(retries=self.request.retries))
    return len(deliveries)


@app.task(name="sentiment.digests_send_due", queue="default", acks_late=True, soft_time_limit=300, time_limit=330)
def digests_send_due() -> int:
    return alerts.digests_send_due()
