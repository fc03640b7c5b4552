"""Thin, idempotent Celery tasks: handle stored Stripe events, report overage to Stripe's Billing Meters."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from django_scopes import scopes_disabled

from config.celery import app

logger = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 10
OVERAGE_BATCH_SIZE = 500  # reports sent per run, oldest first


@app.task(name="subscriptions.stripe_event_handle", queue="default", acks_late=True, reject_on_worker_lost=True,
          soft_time_limit=60, time_limit=90, max_retries=5)
def stripe_event_handle(*, event_id: int) -> bool:
    """Handle one stored webhook event; a second delivery finds it processed and does nothing."""
    from subscriptions import webhooks

    try:
        return webhooks.stripe_event_process(event_id=event_id)
    except Exception as exc:
        logger.exception("Stripe event %s failed", event_id)
        webhooks.stripe_event_record_failure(event_id=event_id, error=f"{type(exc).__name__}: {exc}")
        if getattr(exc, "retryable", False) and not app.conf.task_always_eager:
            raise stripe_event_handle.retry(exc=exc, countdown=30) from exc
        if app.conf.task_always_eager:
            return False  # the webhook already answered 200; the sweep below retries it
        raise


@app.task(name="subscriptions.stripe_events_process_pending", queue="default", acks_late=True,
          soft_time_limit=240, time_limit=270)
def stripe_events_process_pending() -> int:
    """Beat sweep: re-queue events that were stored but never handled (lost message, failed handler)."""
    from subscriptions.models import StripeEvent

    cutoff = timezone.now() - timedelta(minutes=2)
    with scopes_disabled():
        ids = list(StripeEvent.objects.filter(processed_at=None, received_at__lt=cutoff,
                                              attempts__lt=MAX_EVENT_ATTEMPTS).values_list("pk", flat=True)[:200])
    for pk in ids:
        stripe_event_handle.delay(event_id=pk)
    return len(ids)


@app.task(name="subscriptions.usage_report_overage", queue="default", acks_late=True, soft_time_limit=240,
          time_limit=270)
def usage_report_overage() -> int:
    """Beat task: send every unsent overage report as a Billing Meter event (deterministic identifiers)."""
    from subscriptions import billing
    from subscriptions.models import OverageReport

    with scopes_disabled():
        # Abandoned reports (too old, out of attempts) are excluded, so they can never fill the batch.
        ids = list(OverageReport.objects.filter(sent_at=None, attempts__lt=billing.OVERAGE_MAX_ATTEMPTS)
                   .order_by("occurred_at").values_list("pk", flat=True)[:OVERAGE_BATCH_SIZE])
    return sum(1 for pk in ids if billing.overage_report_send(report_id=pk))
