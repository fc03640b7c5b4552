"""Alert rules: evaluation after scoring (negative share or z-score spike over rollups), cooldown, delivery by
e-mail and HMAC-signed webhook, test sends, and the daily digest per watchlist."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.capabilities import Capability, role_has
from accounts.exceptions import ServiceError
from accounts.models import Membership, Organization, User
from accounts.services import audit_record
from sentiment import selectors
from sentiment.models import (
    Alert,
    AlertDelivery,
    AlertRule,
    DeliveryChannel,
    DigestSubscription,
    EntityMention,
    Label,
    RuleKind,
    Watchlist,
)

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Lumen-Signature"
TIMESTAMP_HEADER = "X-Lumen-Timestamp"
MAX_ALERT_DOCUMENTS = 20
MAX_DELIVERY_ATTEMPTS = 5  # per channel and alert; the task retries a failed channel with backoff until then
DELIVERY_RETRY_SECONDS = 60  # first retry after a minute, then doubling: 1, 2, 4, 8 minutes


# --- rules ----------------------------------------------------------------------------------------------------------

def _validate_rule(*, kind: str, threshold: float, window_hours: int, min_volume: int, email_recipients: str,
                   webhook_url: str) -> None:
    if kind not in RuleKind.values:
        raise ServiceError(f"Unknown rule kind '{kind}'; choose {' or '.join(RuleKind.values)}.")
    if kind == RuleKind.NEGATIVE_SHARE and not 0 < threshold < 1:
        raise ServiceError("A negative-share threshold is a share between 0 and 1, e.g. 0.6 for 60%.")
    if kind == RuleKind.SPIKE and threshold <= 0:
        raise ServiceError("A spike threshold is a positive z-score, e.g. 3.")
    if not 1 <= window_hours <= 24 * 30:
        raise ServiceError("The window is between 1 hour and 30 days (720 hours).")
    if min_volume < 1:
        raise ServiceError("The minimum volume is at least 1 document.")
    for address in [e.strip() for e in email_recipients.replace(";", ",").split(",") if e.strip()]:
        try:
            validate_email(address)
        except Exception:
            raise ServiceError(f"'{address}' is not an e-mail address; separate addresses with commas.") from None
    if webhook_url and not webhook_url.lower().startswith(("http://", "https://")):
        raise ServiceError("The webhook URL must start with https:// (or http:// inside your network).")


@transaction.atomic
def alert_rule_create(*, organization: Organization, watchlist: Watchlist, name: str, kind: str,
                      threshold: float, window_hours: int = 24, min_volume: int = 5, entity_key: str = "",
                      baseline_days: int = 14, cooldown_minutes: int = 360, email_recipients: str = "",
                      webhook_url: str = "", created_by: User | None = None) -> AlertRule:
    _validate_rule(kind=kind, threshold=threshold, window_hours=window_hours, min_volume=min_volume,
                   email_recipients=email_recipients, webhook_url=webhook_url)
    entity_key = entity_key.strip().lstrip("$").upper()
    with scope(organization=organization):
        if entity_key and entity_key not in selectors.watchlist_keys(organization=organization, watchlist=watchlist):
            raise ServiceError(f"{entity_key} is not in the watchlist {watchlist.name}; add it there first or leave "
                               "the entity empty to watch every company of the list.")
        rule = AlertRule.objects.create(
            organization=organization, watchlist=watchlist,
            name=name.strip() or f"{entity_key or watchlist.name} alert",
            kind=kind, threshold=threshold, window_hours=window_hours, min_volume=min_volume, entity_key=entity_key,
            baseline_days=baseline_days, cooldown_minutes=cooldown_minutes, email_recipients=email_recipients.strip(),
            webhook_url=webhook_url.strip(), webhook_secret=secrets.token_hex(24), created_by=created_by)
    audit_record(organization=organization, actor=created_by, verb="sentiment.alert_rule.create", target=rule)
    return rule


def alert_rule_toggle(*, rule: AlertRule, is_active: bool) -> AlertRule:
    rule.is_active = is_active
    rule.save(update_fields=["is_active"])
    return rule


def alert_rule_delete(*, rule: AlertRule, actor: User | None) -> None:
    audit_record(organization=rule.organization, actor=actor, verb="sentiment.alert_rule.delete",
                 details={"name": rule.name})
    rule.delete()


# --- evaluation -----------------------------------------------------------------------------------------------------

def _spike_z(*, organization, rule: AlertRule, key: str, now: datetime, negatives: int) -> float:
    """z-score of this window's negative count against the same-sized windows of the trailing baseline."""
    window = timedelta(hours=rule.window_hours)
    windows = max(1, int(timedelta(days=rule.baseline_days) / window))
    start = now - window * (windows + 1)
    series = selectors.entity_series(organization=organization, keys=[key], start=start, end=now - window,
                                     bucket="hour")[key]
    counts = [0] * windows
    for point in series:
        slot = int((point["t"] / 1000 - start.timestamp()) // window.total_seconds())
        if 0 <= slot < windows:
            counts[slot] += point["negatives"] or 0
    mean = sum(counts) / windows
    std = math.sqrt(sum((c - mean) ** 2 for c in counts) / windows)
    return (negatives - mean) / max(std, 1.0)  # a floor of 1 keeps a quiet baseline from making 2 documents a spike


def alerts_evaluate(*, organization: Organization, keys: set[str] | None = None,
                    now: datetime | None = None) -> list[Alert]:
    """Check every active rule (of rules watching `keys`, when given) and create Alert rows for those crossing
    their threshold outside their cooldown; deliveries are queued after commit."""
    now = now or timezone.now()
    created: list[Alert] = []
    with scope(organization=organization):
        rules = list(AlertRule.objects.filter(organization=organization, is_active=True).select_related("watchlist"))
        for rule in rules:
            watched = ([rule.entity_key] if rule.entity_key else
                       selectors.watchlist_keys(organization=organization, watchlist=rule.watchlist))
            if keys is not None:
                watched = [k for k in watched if k in keys]
            if not watched:
                continue
            start = now - timedelta(hours=rule.window_hours)
            totals = selectors.window_totals(organization=organization, keys=watched, start=start, end=now)
            for key, total in totals.items():
                if total["count"] < rule.min_volume:
                    continue
                share = total["negatives"] / total["count"]
                if rule.kind == RuleKind.SPIKE:
                    value = _spike_z(organization=organization, rule=rule, key=key, now=now,
                                     negatives=total["negatives"])
                    message = (f"{key}: {total['negatives']} negative documents in {rule.window_hours} h, "
                               f"z = {value:.1f} against the last {rule.baseline_days} days")
                else:
                    value = share
                    message = (f"{key}: {share:.0%} of {total['count']} documents negative in the last "
                               f"{rule.window_hours} h (threshold {rule.threshold:.0%})")
                if value <= rule.threshold:
                    continue
                alert = _alert_create(organization=organization, rule=rule, key=key, now=now, start=start,
                                      value=value, total=total, message=message)
                if alert is not None:
                    created.append(alert)
            AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now)
    return created


@transaction.atomic
def _alert_create(*, organization, rule: AlertRule, key: str, now: datetime, start: datetime, value: float,
                  total: dict, message: str) -> Alert | None:
    AlertRule.objects.select_for_update().filter(pk=rule.pk).first()  # serialise concurrent evaluations of a rule
    cooldown_start = now - timedelta(minutes=rule.cooldown_minutes)
    if Alert.objects.filter(rule=rule, entity_key=key, triggered_at__gt=cooldown_start).exists():
        return None
    alert = Alert.objects.create(organization=organization, rule=rule, entity_key=key, triggered_at=now,
                                 window_start=start, window_end=now, value=value, volume=total["count"],
                                 negatives=total["negatives"], message=message[:500])
    # The most negative documents of the window (lowest index first); every mention of a document carries the
    # document's index, so distinct (document, index) pairs are distinct documents.
    doc_ids = list(EntityMention.objects.filter(organization=organization, key=key, label=Label.NEGATIVE,
                                                published_at__gte=start, published_at__lt=now)
                   .order_by("sentiment_index").values_list("document_id", flat=True).distinct()
                   [:MAX_ALERT_DOCUMENTS * 2])
    alert.documents.set(list(dict.fromkeys(doc_ids))[:MAX_ALERT_DOCUMENTS])
    transaction.on_commit(lambda: _enqueue_delivery(alert.pk))
    return alert


def _enqueue_delivery(alert_id: int) -> None:
    from sentiment.tasks import alert_deliver

    alert_deliver.apply_async(kwargs={"alert_id": alert_id}, queue="default")


# --- delivery -------------------------------------------------------------------------------------------------------

def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of "<timestamp>.<body>" with the rule's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _payload(alert: Alert | None, rule: AlertRule, test: bool) -> dict:
    site = settings.SITE_URL.rstrip("/")
    data = {"event": "sentiment.alert.test" if test else "sentiment.alert", "rule": {
        "id": rule.pk, "name": rule.name, "kind": rule.kind, "watchlist": rule.watchlist.name,
        "threshold": rule.threshold, "window_hours": rule.window_hours}}
    if alert is not None:
        data["alert"] = {
            "id": alert.pk, "entity": alert.entity_key, "triggered_at": alert.triggered_at.isoformat(),
            "value": round(alert.value, 4), "volume": alert.volume, "negatives": alert.negatives,
            "message": alert.message, "url": site + reverse("sentiment:alert-detail", kwargs={"pk": alert.pk}),
            "documents": [{"id": d.pk, "headline": d.headline, "url": d.url}
                          for d in alert.documents.all()[:MAX_ALERT_DOCUMENTS]]}
    else:
        data["alert"] = {"entity": rule.entity_key or "TEST", "message": "Test delivery from Lumen Insight."}
    return data


def _post_webhook(*, rule: AlertRule, payload: dict) -> tuple[bool, str]:
    body = json.dumps(payload, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(rule.webhook_url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", "User-Agent": "LumenInsight-Webhook/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret=rule.webhook_secret, timestamp=timestamp, body=body)})
    try:
        with urllib.request.urlopen(request, timeout=settings.SENTIMENT_WEBHOOK_TIMEOUT) as response:  # noqa: S310
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"the endpoint answered HTTP {exc.code}; check the URL and that it accepts POST."
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"could not reach the endpoint ({reason}); check the URL and that it is reachable."


def _send_email(*, rule: AlertRule, payload: dict) -> tuple[bool, str]:
    alert = payload["alert"]
    lines = [alert["message"], ""]
    for doc in alert.get("documents", []):
        lines.append(f"- {doc['headline']}")
    if "url" in alert:
        lines += ["", f"Details: {alert['url']}"]
    lines += ["", "Sentiment scores come from a model; the demo model is not investment advice."]
    subject = ("[Lumen] Test alert: " if payload["event"].endswith("test") else "[Lumen] Alert: ") + rule.name
    try:
        send_mail(subject, "\n".join(lines), None, rule.recipients)
    except Exception as exc:  # SMTP errors of every kind end up in the delivery log, not in a 500
        return False, f"the mail server refused the message ({exc})."
    return True, f"sent to {len(rule.recipients)} recipient(s)"


def _channels(rule: AlertRule) -> list[tuple[str, Callable[..., tuple[bool, str]]]]:
    channels = []
    if rule.recipients:
        channels.append((DeliveryChannel.EMAIL, _send_email))
    if rule.webhook_url:
        channels.append((DeliveryChannel.WEBHOOK, _post_webhook))
    return channels


def _deliver(*, rule: AlertRule, alert: Alert | None, test: bool,
             only: set[str] | None = None) -> list[AlertDelivery]:
    payload = _payload(alert, rule, test)
    deliveries = []
    for channel, send in _channels(rule):
        if only is not None and channel not in only:
            continue
        ok, detail = send(rule=rule, payload=payload)
        deliveries.append(AlertDelivery.objects.create(organization=rule.organization, rule=rule, alert=alert,
                                                       channel=channel, is_test=test, ok=ok, detail=detail[:500]))
    return deliveries


def alert_deliver(*, alert_id: int) -> list[AlertDelivery]:
    """Send the alert on each channel of its rule that has not succeeded yet; returns the attempts made now.

    Per channel: one that succeeded is never sent again (a redelivered or retried task sends no second e-mail), one
    that failed is tried again on the next call, up to MAX_DELIVERY_ATTEMPTS attempts in all."""
    with scopes_disabled():
        alert = Alert.objects.select_related("rule", "rule__watchlist", "organization").filter(pk=alert_id).first()
    if alert is None:
        return []
    with scope(organization=alert.organization):
        succeeded: set[str] = set()
        failures: dict[str, int] = defaultdict(int)
        for channel, ok in AlertDelivery.objects.filter(alert=alert, is_test=False).values_list("channel", "ok"):
            if ok:
                succeeded.add(channel)
            else:
                failures[channel] += 1
        due = {channel for channel, _ in _channels(alert.rule)
               if channel not in succeeded and failures[channel] < MAX_DELIVERY_ATTEMPTS}
        if not due:
            return []
        return _deliver(rule=alert.rule, alert=alert, test=False, only=due)


def delivery_retry_countdown(*, retries: int) -> int:
    """Seconds before the next delivery attempt after `retries` retries so far (exponential backoff)."""
    return DELIVERY_RETRY_SECONDS * 2 ** retries


def alert_rule_send_test(*, rule: AlertRule, actor: User | None) -> list[AlertDelivery]:
    """Send a test message through every channel of the rule now; returns one delivery record per channel."""
    if not rule.recipients and not rule.webhook_url:
        raise ServiceError("This rule has no e-mail recipients and no webhook; add one of them, then send a test.")
    deliveries = _deliver(rule=rule, alert=None, test=True)
    audit_record(organization=rule.organization, actor=actor, verb="sentiment.alert_rule.test", target=rule)
    return deliveries


# --- digest ---------------------------------------------------------------------------------------------------------

def digest_compose(*, watchlist: Watchlist, now: datetime | None = None) -> tuple[str, str]:
    """Subject and body of the daily digest: counts, top movers and worst headlines of the last 24 hours."""
    now = now or timezone.now()
    org = watchlist.organization
    keys = selectors.watchlist_keys(organization=org, watchlist=watchlist)
    day = timedelta(days=1)
    totals = selectors.window_totals(organization=org, keys=keys, start=now - day, end=now)
    movers = selectors.top_movers(organization=org, keys=keys, end=now, period=day, min_volume=1)
    worst = selectors.latest_strongly_negative(organization=org, keys=keys, start=now - day, end=now, limit=5)
    n = sum(t["count"] for t in totals.values())
    neg = sum(t["negatives"] for t in totals.values())
    lines = [f"{watchlist.name}: {n} documents in the last 24 hours, {neg} negative.", "", "Top movers:"]
    lines += [f"  {m['key']}: index {m['index']:+.2f} ({m['change']:+.2f} vs the day before, {m['volume']} docs)"
              for m in movers] or ["  none (not enough documents on both days)"]
    lines += ["", "Per company:"]
    lines += [f"  {k}: {t['count']} documents, {t['negatives']} negative" for k, t in sorted(totals.items())] or [
        "  no documents"]
    lines += ["", "Worst headlines:"]
    lines += [f"  - {d.headline}" for d in worst] or ["  none"]
    site = settings.SITE_URL.rstrip("/")
    lines += ["", f"Dashboard: {site}{reverse('sentiment:dashboard', kwargs={'pk': watchlist.pk})}",
              "You receive this because you opted in on the watchlist page; opt out there.",
              "Sentiment scores come from a model; the demo model is not investment advice."]
    return f"[Lumen] Daily digest: {watchlist.name}", "\n".join(lines)


def digests_send_due(*, now: datetime | None = None) -> int:
    """Beat: send today's digest to every opted-in user who has not had it yet, from the configured hour on.

    Only to members whose role may still view sentiment: the opt-in of someone who left the organisation or whose
    role lost that right is deleted instead (they can no longer open the watchlist page to opt out)."""
    now = now or timezone.now()
    if now.hour < settings.SENTIMENT_DIGEST_HOUR_UTC:
        return 0
    sent = 0
    with scopes_disabled():
        due = list(DigestSubscription.objects.exclude(last_sent_on=now.date())
                   .select_related("watchlist", "watchlist__organization", "user"))
    roles = {(org_id, user_id): role for org_id, user_id, role in Membership.objects.filter(
        organization_id__in={s.organization_id for s in due}, user_id__in={s.user_id for s in due})
        .values_list("organization_id", "user_id", "role")}
    for sub in due:
        if not sub.user.is_active:
            continue
        if not role_has(roles.get((sub.organization_id, sub.user_id)), Capability.SENTIMENT_VIEW):
            with scope(organization=sub.watchlist.organization):
                DigestSubscription.objects.filter(pk=sub.pk).delete()
            logger.info("digest subscription %s removed: user %s may no longer view sentiment in organisation %s",
                        sub.pk, sub.user_id, sub.organization_id)
            continue
        with scope(organization=sub.watchlist.organization):
            subject, body = digest_compose(watchlist=sub.watchlist, now=now)
            send_mail(subject, body, None, [sub.user.email])
            DigestSubscription.objects.filter(pk=sub.pk).update(last_sent_on=now.date())
            sent += 1
    return sent
